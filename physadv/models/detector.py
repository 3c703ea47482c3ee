"""Adapter for any Ultralytics detection model (YOLOv5u, v8, v9, v10, 11, 12, 26).

Two views of the same network:

- :meth:`YoloDetector.candidates` — differentiable, pre-NMS: a box and per-class scores for every
  anchor. Attacks take their loss from here.
- :meth:`YoloDetector.predict` — no-grad, NMS'd detections, equal to Ultralytics' own ``predict``.

Conventions: images are RGB float in [0, 1], ``[B, 3, H, W]``, any H and W. Boxes are
``x1, y1, x2, y2`` in the input image's pixels. The victim is frozen (eval mode, no parameter
gradients) for the adapter's whole life.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from physadv.data.images import LETTERBOX_FILL
from physadv.device import autocast
from physadv.models.classes import ClassNames
from physadv.models.frozen import freeze

STRIDE = 32


@dataclass
class Candidates:
    """Pre-NMS output, one row per anchor.

    Shape:
        - boxes: ``[B, A, 4]`` xyxy in input pixels
        - scores: ``[B, A, nc]`` class scores in [0, 1] (sigmoid; v8/11/26 have no objectness)
    """

    boxes: torch.Tensor
    scores: torch.Tensor


@dataclass
class Detections:
    """Detections of one image after NMS: ``boxes [N, 4]`` xyxy pixels, ``scores [N]``, ``labels [N]``."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


@dataclass
class _Letterbox:
    scale: float
    top: int
    left: int
    height: int
    width: int


def _letterbox(images: torch.Tensor, imgsz: int | None) -> tuple[torch.Tensor, _Letterbox]:
    """Resize (long side → ``imgsz``, if given) and pad centred to multiples of 32 with grey 114.

    Matches Ultralytics' ``LetterBox(auto=True)``; differentiable with respect to ``images``.
    """
    h, w = images.shape[-2:]
    scale = 1.0
    if imgsz is not None and max(h, w) != imgsz:
        scale = imgsz / max(h, w)
        size = (round(h * scale), round(w * scale))
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    nh, nw = images.shape[-2:]
    pad_h, pad_w = (-nh) % STRIDE, (-nw) % STRIDE
    top, left = pad_h // 2, pad_w // 2
    if pad_h or pad_w:
        images = F.pad(images, (left, pad_w - left, top, pad_h - top), value=LETTERBOX_FILL)
    return images, _Letterbox(scale, top, left, h, w)


def _to_input_pixels(boxes: torch.Tensor, box: _Letterbox, clip: bool) -> torch.Tensor:
    offset = boxes.new_tensor([box.left, box.top, box.left, box.top])
    boxes = (boxes - offset) / box.scale
    if clip:
        limit = boxes.new_tensor([box.width, box.height, box.width, box.height])
        boxes = torch.minimum(boxes.clamp(min=0), limit)
    return boxes


def _xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    half = b[..., 2:] / 2
    return torch.cat([b[..., :2] - half, b[..., :2] + half], dim=-1)


class YoloDetector:
    """Frozen Ultralytics ``DetectionModel`` behind physadv's detector contract.

    Args:
        model: an Ultralytics ``DetectionModel`` (``YOLO(w).model``).
        names: class names; defaults to ``model.names``.
        device: where the model runs.
        amp: float16 autocast on CUDA.
        imgsz: resize inputs so the long side is this many pixels (``None``: keep the input size).
        end2end: for heads with an NMS-free one-to-one branch (YOLO26, v10): ``True`` uses it
            (Ultralytics' ``predict(nms=False)``); ``False`` uses the one-to-many branch with NMS;
            ``None`` follows Ultralytics' default ``predict`` (one-to-many with NMS, unless fusion
            removed that branch).
    """

    kind = "detector"
    file_format = "a module in memory"  # what load_model read it from

    def __init__(
        self,
        model: nn.Module,
        names: ClassNames | None = None,
        device: torch.device | str = "cpu",
        amp: bool = False,
        imgsz: int | None = None,
        end2end: bool | None = None,
    ):
        self.device = torch.device(device)
        self.model = freeze(model, self.device)
        self.names = names or ClassNames(model.names)
        self.amp = amp
        self.imgsz = imgsz
        self.head = self.model.model[-1]
        if not hasattr(self.head, "stride") or not hasattr(self.head, "nc"):
            raise TypeError("not an Ultralytics detection model: its last layer has no detection head")
        self.has_one2one = getattr(self.head, "one2one_cv2", None) is not None
        has_one2many = getattr(self.head, "cv2", None) is not None
        if end2end is None:
            end2end = self.has_one2one and not has_one2many
        if end2end and not self.has_one2one:
            raise ValueError("this detector has no end-to-end (one-to-one) head")
        if not end2end and not has_one2many:
            raise ValueError("this detector's one-to-many head was removed by fusion; use end2end=True")
        if self.has_one2one:
            self.head.end2end = end2end
        self.end2end = bool(end2end)
        self.branch = "one2one" if self.end2end else "one2many"
        # Decoded boxes are xyxy for end-to-end heads, else xywh (see Detect.decode_bboxes).
        self._boxes_xyxy = self.end2end or bool(getattr(self.head, "xyxy", False))
        args = getattr(self.model, "args", None) or {}
        args = args if isinstance(args, dict) else vars(args)
        self.train_imgsz = int(args.get("imgsz", 640)) if str(args.get("imgsz", "")).isdigit() else 640

    @property
    def num_classes(self) -> int:
        return int(self.head.nc)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict | torch.Tensor]:
        if torch.is_grad_enabled():
            # Anchors cached by an earlier inference-mode forward cannot be saved for backward.
            self.head.shape = None
        with autocast(self.device, self.amp):
            return self.model(x)

    def candidates(self, images: torch.Tensor) -> Candidates:
        """Differentiable pre-NMS boxes and class scores for every anchor.

        Shape:
            - images: ``[B, 3, H, W]`` RGB in [0, 1]
            - returns: :class:`Candidates` with ``A`` anchors for the padded size
        """
        x, box = _letterbox(images.to(self.device), self.imgsz)
        y, raw = self._forward(x)
        if self.end2end:  # y holds top-k detections; decode every anchor of the one-to-one branch
            y = self.head._inference(raw["one2one"])
        y = y.float().transpose(1, 2)  # [B, A, 4 + nc]
        boxes = y[..., :4] if self._boxes_xyxy else _xywh_to_xyxy(y[..., :4])
        return Candidates(
            boxes=_to_input_pixels(boxes, box, clip=False), scores=y[..., 4 : 4 + self.num_classes]
        )

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor,
        conf: float = 0.25,
        iou: float = 0.7,
        classes: list[int] | None = None,
        max_det: int = 300,
    ) -> list[Detections]:
        """Detections after NMS (Ultralytics' defaults: conf 0.25, IoU 0.7), one per image."""
        from ultralytics.utils.nms import non_max_suppression

        x, box = _letterbox(images.to(self.device), self.imgsz)
        y = self._forward(x)[0].float()
        kept = non_max_suppression(y, conf, iou, classes, max_det=max_det, end2end=self.end2end)
        return [
            Detections(
                boxes=_to_input_pixels(d[:, :4], box, clip=True), scores=d[:, 4], labels=d[:, 5].long()
            )
            for d in kept
        ]
