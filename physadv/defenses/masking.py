"""Masking defenses: PatchCleanser for classifiers (Xiang et al., USENIX Security 2022) and
ObjectSeeker for detectors (Xiang et al., IEEE S&P 2023).

Both rest on one idea: a patch only works while it is seen, so run the model again on copies of the
image with regions masked out, and trust what the masked copies agree on.

- PatchCleanser lays a grid of masks such that any patch up to a given size lies wholly under at
  least one of them (an R-covering), predicts with every one-mask and, where the one-mask votes
  disagree, every two-mask copy (double masking). An image is *certified* for a label when every
  two-mask copy predicts it: then no patch of that size anywhere can change the output.
- ObjectSeeker cuts the image at ``lines`` evenly spaced horizontal and vertical lines and masks
  one side of each cut (4·lines masked copies). Boxes found in the copies that the unmasked image
  did not already report (intersection over the new box's area below ``prune``) are merged into
  clusters and added to the output.

Each wrapper keeps the adapter contract, so attacks and evaluations use it unchanged. Masking is a
vote and has no gradient; the adaptive attack takes the expectation over masks instead (EOT):
``logits``/``candidates`` pass a fresh random sample of masked copies every call.
"""

from __future__ import annotations

from math import ceil

import torch

from physadv.defenses.defended import ModelWrapper
from physadv.models.detector import Candidates, Detections

MASK_FILL = 0.5  # masked pixels become mid-grey


def mask_windows(size: int, patch: int, count: int) -> list[tuple[int, int]]:
    """``count`` (or fewer, where they would coincide) windows ``[start, end)`` along an axis of
    ``size`` pixels such that any span of ``patch`` pixels lies wholly inside one of them: stride
    ``s = ⌈(size − patch + 1) / count⌉``, width ``patch + s − 1`` (PatchCleanser's R-covering)."""
    patch = max(1, min(patch, size))
    stride = ceil((size - patch + 1) / count)
    width = min(size, patch + stride - 1)
    starts = sorted({min(i * stride, size - width) for i in range(count)})
    return [(s, s + width) for s in starts]


def _apply_masks(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` × ``masks [M, 1, H, W]`` (1 = masked) → ``[B, M, 3, H, W]``."""
    m = masks.to(images)[None]
    return images[:, None] * (1 - m) + MASK_FILL * m


class _Masking(ModelWrapper):
    """What both masking defenses share: their masks, and a random sample of them for the attacker."""

    sample = 4

    def masks(self, height: int, width: int) -> torch.Tensor:
        raise NotImplementedError

    def sampled_copies(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, sample, 3, H, W]``: each image under ``sample`` masks drawn afresh (EOT over masks)."""
        images = images.to(self.device)
        masks = self.masks(*images.shape[-2:])
        pick = torch.randperm(len(masks), generator=self.generator)[: self.sample]
        return _apply_masks(images, masks[pick].to(self.device))


class PatchCleanser(_Masking):
    """Double masking around a classifier adapter.

    Args:
        model: the classifier adapter.
        patch: the largest patch to defend against, as a fraction of the image side.
        per_axis: masks per axis (``per_axis²`` masks in all; the paper uses 6).
        sample: masked copies per ``logits`` call (the adaptive attack's EOT over masks).
    """

    kind = "classifier"

    def __init__(self, model, patch: float = 0.25, per_axis: int = 6, sample: int = 4, seed: int = 0):
        super().__init__(model, seed)
        self.patch, self.per_axis, self.sample = patch, per_axis, sample
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def name(self) -> str:
        return f"patchcleanser:{self.patch:g}"

    def masks(self, height: int, width: int) -> torch.Tensor:
        """``[M, 1, H, W]`` masks (1 = masked) for images of this size."""
        if (height, width) not in self._masks:
            rows = mask_windows(height, round(self.patch * height), self.per_axis)
            cols = mask_windows(width, round(self.patch * width), self.per_axis)
            masks = torch.zeros(len(rows) * len(cols), 1, height, width)
            for k, ((r0, r1), (c0, c1)) in enumerate((r, c) for r in rows for c in cols):
                masks[k, :, r0:r1, c0:c1] = 1
            self._masks[(height, width)] = masks
        return self._masks[(height, width)]

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Mean logits over a random sample of one-mask copies (differentiable)."""
        copies = self.sampled_copies(images)
        b, s = copies.shape[:2]
        return self.model.logits(copies.flatten(0, 1)).view(b, s, -1).mean(dim=1)

    @torch.no_grad()
    def _labels(self, copies: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        flat = copies.flatten(0, 1)
        out = torch.cat([self.model.predict(flat[i : i + chunk])[0] for i in range(0, len(flat), chunk)])
        return out.view(copies.shape[:2])

    def _pair_masks(self, masks: torch.Tensor, first: int) -> torch.Tensor:
        return torch.maximum(masks[first : first + 1], masks)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Double-masking labels ``[B]`` and the one-mask vote shares ``[B, nc]``."""
        images = images.to(self.device)
        masks = self.masks(*images.shape[-2:]).to(self.device)
        one = self._labels(_apply_masks(images, masks))  # [B, M]
        votes = torch.nn.functional.one_hot(one, self.model.num_classes).float().mean(dim=1)
        labels = votes.argmax(dim=1)  # the majority, unless a minority vote survives double masking
        for b in torch.nonzero((one != one[:, :1]).any(dim=1)).flatten().tolist():
            for i in torch.nonzero(one[b] != labels[b]).flatten().tolist():
                two = self._labels(_apply_masks(images[b : b + 1], self._pair_masks(masks, i)))[0]
                if bool((two == one[b, i]).all()):
                    labels[b] = one[b, i]
                    break
        return labels, votes

    @torch.no_grad()
    def certify(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: every two-mask copy predicts ``labels`` (no patch within the size can change
        the output)."""
        images = images.to(self.device)
        masks = self.masks(*images.shape[-2:]).to(self.device)
        certified = torch.ones(len(images), dtype=torch.bool)
        for i in range(len(masks)):
            pairs = self._pair_masks(masks, i)[i:]  # mask i with itself and every later one
            agree = (self._labels(_apply_masks(images, pairs)).cpu() == labels.cpu()[:, None]).all(dim=1)
            certified &= agree
            if not certified.any():
                break
        return certified


def box_ioa(boxes: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` intersection of each box in ``boxes`` with each in ``others``, over the area of the
    box in ``boxes``."""
    top_left = torch.maximum(boxes[:, None, :2], others[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], others[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-9).prod(dim=1)
    return inter / area[:, None]


def _clusters(close: torch.Tensor) -> list[list[int]]:
    """Connected components of a symmetric ``[N, N]`` bool adjacency."""
    seen, out = set(), []
    for start in range(len(close)):
        if start in seen:
            continue
        group, todo = [], [start]
        seen.add(start)
        while todo:
            i = todo.pop()
            group.append(i)
            for j in torch.nonzero(close[i]).flatten().tolist():
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        out.append(sorted(group))
    return out


class ObjectSeeker(_Masking):
    """ObjectSeeker around a detector adapter.

    Args:
        model: the detector adapter.
        lines: cut positions per direction (4·lines masked copies; ART's default is 3).
        conf: the operating threshold: masked copies report boxes above it, and only unmasked boxes
            above it prune them.
        prune: intersection over a masked box's area with an unmasked box of the same class at
            which the masked box counts as already reported (0.5).
        merge: boxes whose mutual intersection-over-area is at least ``1 − merge`` are one object
            (0.1, as ART's clustering distance).
        sample: masked copies per ``candidates`` call (the adaptive attack's EOT over masks).
    """

    kind = "detector"

    def __init__(
        self,
        model,
        lines: int = 3,
        conf: float = 0.25,
        prune: float = 0.5,
        merge: float = 0.1,
        sample: int = 4,
        seed: int = 0,
    ):
        super().__init__(model, seed)
        self.lines, self.conf, self.prune, self.merge, self.sample = lines, conf, prune, merge, sample

    @property
    def name(self) -> str:
        return f"objectseeker:{self.lines}"

    def masks(self, height: int, width: int) -> torch.Tensor:
        """``[4·lines, 1, H, W]``: left, right, top and bottom of each cut masked in turn."""
        masks = torch.zeros(4 * self.lines, 1, height, width)
        for k in range(1, self.lines + 1):
            x, y = int(width * k / (self.lines + 1)), int(height * k / (self.lines + 1))
            i = k - 1
            masks[i, ..., :x] = 1
            masks[self.lines + i, ..., width - x :] = 1
            masks[2 * self.lines + i, :, :y] = 1
            masks[3 * self.lines + i, :, height - y :] = 1
        return masks

    def candidates(self, images: torch.Tensor) -> Candidates:
        """The unmasked image's candidates followed by those of a random sample of masked copies
        (``[B, A·(1 + sample), …]``; differentiable)."""
        images = images.to(self.device)
        copies = torch.cat([images[:, None], self.sampled_copies(images)], dim=1)
        b, s = copies.shape[:2]
        c = self.model.candidates(copies.flatten(0, 1))
        return Candidates(
            c.boxes.view(b, s, *c.boxes.shape[1:]).flatten(1, 2),
            c.scores.view(b, s, *c.scores.shape[1:]).flatten(1, 2),
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
        """The unmasked detections plus the new objects the masked copies found."""
        from torchvision.ops import batched_nms

        images = images.to(self.device)
        masks = self.masks(*images.shape[-2:]).to(self.device)
        base = self.model.predict(images, conf=conf, iou=iou, classes=classes, max_det=max_det)
        copies = _apply_masks(images, masks).flatten(0, 1)  # every masked copy of every image, one pass
        masked = self.model.predict(copies, conf=max(conf, self.conf), iou=iou, classes=classes)
        out = []
        for k, seen in enumerate(base):
            found = masked[k * len(masks) : (k + 1) * len(masks)]
            boxes = torch.cat([d.boxes for d in found])
            scores = torch.cat([d.scores for d in found])
            labels = torch.cat([d.labels for d in found])
            keep = batched_nms(boxes.float(), scores.float(), labels, iou)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            sure = seen.scores >= self.conf
            if len(boxes) and bool(sure.any()):
                same = labels[:, None] == seen.labels[sure][None]
                reported = ((box_ioa(boxes, seen.boxes[sure]) >= self.prune) & same).any(dim=1)
                boxes, scores, labels = boxes[~reported], scores[~reported], labels[~reported]
            new = self._merge(boxes, scores, labels)
            out.append(
                Detections(
                    torch.cat([seen.boxes, new.boxes.to(seen.boxes)]),
                    torch.cat([seen.scores, new.scores.to(seen.scores)]),
                    torch.cat([seen.labels, new.labels.to(seen.labels)]),
                )
            )
        return out

    def _merge(self, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> Detections:
        """One box (the union) per cluster of mutually overlapping boxes of a class."""
        merged = ([], [], [])
        for label in labels.unique().tolist():
            idx = torch.nonzero(labels == label).flatten()
            ioa = box_ioa(boxes[idx], boxes[idx])
            close = torch.maximum(ioa, ioa.T) >= 1 - self.merge
            for group in _clusters(close):
                g = idx[group]
                merged[0].append(torch.cat([boxes[g, :2].amin(dim=0), boxes[g, 2:].amax(dim=0)]))
                merged[1].append(scores[g].max())
                merged[2].append(labels[g[0]])
        if not merged[0]:
            return Detections(boxes.new_zeros(0, 4), scores.new_zeros(0), labels.new_zeros(0))
        return Detections(torch.stack(merged[0]), torch.stack(merged[1]), torch.stack(merged[2]))
