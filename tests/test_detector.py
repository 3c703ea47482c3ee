"""The YOLO adapter against Ultralytics itself: layout, boxes, scores, gradients, frozen victim."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import to_tensor

from physadv.models import YoloDetector

CASES = [("yolov8n.yaml", None), ("yolo11n.yaml", None), ("yolo26n.yaml", None), ("yolo26n.yaml", False)]


@pytest.mark.parametrize("cfg,nms", CASES)
def test_predict_matches_ultralytics(lively_yolo, street_image, cfg, nms):
    yolo = lively_yolo(cfg)
    detector = YoloDetector(copy.deepcopy(yolo.model), end2end=(nms is False))
    theirs = yolo.predict(street_image[..., ::-1].copy(), nms=nms, verbose=False)[0].boxes
    ours = detector.predict(to_tensor(street_image))[0]
    assert len(theirs) > 10, "the lively model should detect many boxes at conf 0.25"
    assert len(ours.boxes) == len(theirs)
    # Match as sets: Ultralytics fuses Conv+BN, so near-ties deep in the list may swap places.
    for box, score, label in zip(ours.boxes[:100], ours.scores[:100], ours.labels[:100], strict=True):
        same = (theirs.cls.long() == label) & ((theirs.conf - score).abs() < 1e-3)
        same &= (theirs.xyxy - box).abs().max(dim=1).values <= 1.0
        assert same.any(), (
            f"no Ultralytics detection matches ours: {box.tolist()} {float(score):.4f} {int(label)}"
        )
    torch.testing.assert_close(ours.scores[:10], theirs.conf[:10], atol=1e-3, rtol=0)


@pytest.mark.parametrize("cfg,nms", CASES)
def test_top_candidate_is_the_top_detection(lively_yolo, street_image, cfg, nms):
    """The adapter's best candidate is what predict reports first (catches attacks on a wrong axis)."""
    yolo = lively_yolo(cfg)
    detector = YoloDetector(copy.deepcopy(yolo.model), end2end=(nms is False))
    theirs = yolo.predict(street_image[..., ::-1].copy(), nms=nms, verbose=False)[0].boxes
    cands = detector.candidates(to_tensor(street_image))
    assert cands.scores.shape == (1, cands.boxes.shape[1], 80) and cands.boxes.shape[-1] == 4
    scores = cands.scores[0]
    best_score, best_class = scores.max(dim=1)
    anchor = best_score.argmax()
    assert abs(float(best_score[anchor]) - float(theirs.conf[0])) < 1e-3
    assert int(best_class[anchor]) == int(theirs.cls[0])
    box = torch.minimum(cands.boxes[0, anchor].clamp(min=0), torch.tensor([640.0, 470.0, 640.0, 470.0]))
    torch.testing.assert_close(box, theirs.xyxy[0], atol=1.0, rtol=0)
    if nms is False:
        return
    # NMS keeps one label per anchor: its top class. Per class, the best such anchor is reported.
    for cls in theirs.cls.unique()[:5].long().tolist():
        own = best_class == cls
        assert abs(float(best_score[own].max()) - float(theirs.conf[theirs.cls == cls].max())) < 1e-3


@pytest.mark.parametrize(
    "cfg,end2end",
    [("yolov8n.yaml", None), ("yolo11n.yaml", None), ("yolo26n.yaml", False), ("yolo26n.yaml", True)],
)
def test_gradient_reaches_input(lively_yolo, cfg, end2end):
    detector = YoloDetector(lively_yolo(cfg).model, end2end=end2end)
    x = torch.rand(2, 3, 150, 200, requires_grad=True)  # odd size: padding inside the adapter
    cands = detector.candidates(x)
    assert cands.boxes.shape[:2] == cands.scores.shape[:2]
    cands.scores[..., 0].max(dim=1).values.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_backward_after_inference_mode_forward(lively_yolo):
    """Anchors cached by an inference-mode forward must not break the attack's backward pass."""
    yolo = lively_yolo("yolo11n.yaml")
    detector = YoloDetector(yolo.model)
    x = torch.rand(1, 3, 128, 128)
    with torch.inference_mode():
        detector.model(x)
    x.requires_grad_(True)
    detector.candidates(x).scores.max().backward()
    assert x.grad.abs().sum() > 0


def test_victim_unchanged_by_an_attack_step(lively_yolo):
    detector = YoloDetector(lively_yolo("yolov8n.yaml").model)
    before = {k: v.clone() for k, v in detector.model.state_dict().items()}
    patch = torch.rand(1, 3, 64, 64, requires_grad=True)
    opt = torch.optim.Adam([patch], lr=0.03)
    for _ in range(2):
        image = torch.nn.functional.pad(patch, (48, 48, 48, 48), value=0.5)  # the patch on grey
        loss = detector.candidates(image).scores[..., 0].max()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = detector.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m.training for m in detector.model.modules())
    assert not any(p.requires_grad for p in detector.model.parameters())


def test_resize_matches_ultralytics_imgsz(lively_yolo, street_image):
    """With imgsz=320 the adapter resizes as Ultralytics does and maps boxes back to input pixels."""
    yolo = lively_yolo("yolov8n.yaml")
    theirs = yolo.predict(street_image[..., ::-1].copy(), imgsz=320, verbose=False)[0].boxes
    ours = YoloDetector(copy.deepcopy(yolo.model), imgsz=320).predict(to_tensor(street_image))[0]
    assert len(theirs) > 10 and ours.boxes[:, 2].max() > 320, "boxes must come back in the 640-wide input"
    torch.testing.assert_close(ours.scores[:10], theirs.conf[:10], atol=2e-2, rtol=0)
    torch.testing.assert_close(ours.boxes[0], theirs.xyxy[0], atol=2.0, rtol=0)


def test_class_lookup_by_name_and_id():
    """Official yamls carry no names; the loader gives their 80 classes COCO's names."""
    from physadv.models import load_model

    detector = load_model("yolov8n.yaml", device="cpu")
    assert detector.names.id("stop sign") == 11
    assert detector.names.id("Stop_Sign") == 11
    assert detector.names.id("0") == 0
    from physadv.errors import PhysadvError

    with pytest.raises(PhysadvError, match="did you mean 'stop sign'"):
        detector.names.id("stop sing")
    with pytest.raises(PhysadvError, match="out of range"):
        detector.names.id(80)


def test_end2end_refused_without_one2one_head(lively_yolo):
    with pytest.raises(ValueError, match="no end-to-end"):
        YoloDetector(lively_yolo("yolov8n.yaml").model, end2end=True)
