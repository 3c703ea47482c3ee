"""RP2 stickers: masks, EOT views, objectives, verdicts, the optimisation loop and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision

from physadv.attacks.masks import area_fraction, sticker_mask
from physadv.attacks.objectives import hide_loss, untargeted_margin
from physadv.boxes import box_iou
from physadv.errors import PhysadvError
from physadv.harness.crops import crop_object
from physadv.harness.metrics import judge_object, wilson_interval
from physadv.models.detector import Candidates, Detections
from physadv.scene.signs import render_face
from physadv.statefile import load_state
from tests.conftest import interrupt_after_first_step, run_physadv


@pytest.fixture(scope="module")
def stop_alpha() -> torch.Tensor:
    return torch.from_numpy(np.array(render_face("stop", 0.2)))[..., 3][None]


@pytest.fixture(scope="module")
def classifier():
    from physadv.models import load_model

    return load_model("default", task="classify", device="cpu")


def test_masks_cover_the_face_only(stop_alpha, tmp_path):
    blocks = sticker_mask("blocks", stop_alpha)
    assert 0.10 < area_fraction(blocks, stop_alpha) <= 0.15  # RP2-sized, within the 15 % budget
    stripes = sticker_mask("stripes", stop_alpha)
    assert 0.10 < area_fraction(stripes, stop_alpha) <= 0.15
    # the stripes reach the octagon's sides (the outline a detector sees); the blocks do not
    assert stripes[0, :, :12].sum() > 0 and stripes[0, :, -12:].sum() > 0
    assert blocks[0, :, :32].sum() == 0 and blocks[0, :, -32:].sum() == 0
    poster = sticker_mask("poster", stop_alpha)
    assert area_fraction(poster, stop_alpha) > 0.98
    assert poster[0, 0, 0] == 0  # the octagon's cut corner is not sign
    from PIL import Image

    Image.new("L", (64, 64), 255).save(tmp_path / "all.png")
    assert torch.equal(sticker_mask(str(tmp_path / "all.png"), stop_alpha), poster)
    with pytest.raises(PhysadvError, match="unknown mask 'grafiti'.*graffiti"):
        sticker_mask("grafiti", stop_alpha)


def test_learned_places_keep_the_best_cells_on_the_sign_within_the_budget(stop_alpha):
    from physadv.attacks.placement import CellPlacement

    face = sticker_mask("poster", stop_alpha)  # [1, 128, 128]
    places = CellPlacement(face, cells=8, area=0.15)
    with torch.no_grad():
        places.logits[0, 0, 0] = 9.0  # the octagon's cut corner: mostly not sign, never kept
        places.logits[0, 3, 2:5] = torch.tensor([5.0, 4.0, 3.0])  # the three best cells on the sign
        places.logits[0, 5, 5] = 2.0
    hard = places.hard()
    assert area_fraction(hard, stop_alpha) <= 0.15 + 1e-6
    assert hard[0, 48:64, 32:80].mean() == 1 and hard[0, 80:96, 80:96].mean() == 1
    assert hard[0, :16, :16].sum() == 0
    assert set(hard.unique().tolist()) <= {0.0, 1.0} and (hard * (1 - face)).sum() == 0  # cut to the sign
    cells = hard[0].reshape(8, 16, 8, 16).amax(dim=(1, 3))  # whole 16-pixel cells (or their part on the sign)
    assert area_fraction(hard, stop_alpha) > 0.15 - 2 * 16 * 16 / float(face.sum())  # fills the budget
    assert int(cells.sum()) >= 4
    # the soft mask is differentiable in the logits, tends to binary as it cools, and pays for area
    soft = places.soft(places.temperature(0.0))
    soft.sum().backward()
    assert places.logits.grad[0, 3, 2] > 0 and places.logits.grad[0, 0, 0] == 0
    cold = places.soft(places.temperature(1.0)).detach()
    assert ((cold > 0.02) & (cold < 0.98)).float().mean() < ((soft > 0.02) & (soft < 0.98)).float().mean()
    assert places.penalty(face * 0) == 0 and places.penalty(face) > 0


def test_views_are_deterministic_and_differentiable():
    from physadv.eot.sign_views import draw_views, render_views

    a = draw_views(np.random.default_rng(3), 4, kind="crop")
    b = draw_views(np.random.default_rng(3), 4, kind="crop")
    assert all(
        torch.equal(x.base, y.base) and torch.equal(x.corners, y.corners) for x, y in zip(a, b, strict=True)
    )
    face = torch.from_numpy(np.array(render_face("stop", 0.2))).permute(2, 0, 1).clone().requires_grad_(True)
    out = render_views(face, a, (32, 32))
    assert out.shape == (4, 3, 32, 32) and 0 <= out.min() and out.max() <= 1 + 1e-5
    assert torch.equal(out, render_views(face, b, (32, 32)))  # noise and effects replay exactly
    out.mean().backward()
    assert face.grad[:3].abs().sum() > 0
    frames = draw_views(np.random.default_rng(4), 3, kind="frame", frame_width=160)
    for v in frames:
        assert v.base.shape == (3, 120, 160)
        x1, y1, x2, y2 = v.box
        assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120


def test_views_keep_their_warp_and_effects_and_render_as_the_renderer_does():
    """A view keeps its sampling positions and fixed effects between steps: rendering it again gives
    the same pixels, equal to compositing and applying the effects afresh the renderer's way."""
    import torch.nn.functional as F

    from physadv.eot.sign_views import draw_views, render_views
    from physadv.scene.compose import composite
    from physadv.scene.effects import apply_effects

    views = draw_views(np.random.default_rng(7), 6, kind="crop")
    for i, v in enumerate(views):  # every effect on, JPEG on half of them
        v.effects.shadow, v.effects.motion_blur_px, v.effects.noise_std = 0.3, 2.0, 0.02
        v.effects.jpeg_quality = 70 if i % 2 else 0
    face = torch.from_numpy(np.array(render_face("stop", 0.2))).permute(2, 0, 1)
    first = render_views(face, views, (32, 32))
    assert all(v.cache for v in views)
    assert torch.equal(first, render_views(face, views, (32, 32)))
    for v, got in zip(views, first, strict=True):
        x = composite(v.base[None], face[None], v.corners[None])
        x = apply_effects(x, v.effects, torch.Generator().manual_seed(v.noise_seed))
        x = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=x.shape[-2] > 32)
        assert torch.allclose(got, x[0], atol=1e-5)


def _every_effect_on(views, jpeg: bool) -> None:
    for i, v in enumerate(views):
        v.effects.shadow, v.effects.noise_std = 0.3, 0.02
        v.effects.motion_blur_px = (0.5, 2.0, 3.5)[i % 3]  # none, a 3-pixel and a 5-pixel kernel
        v.effects.jpeg_quality = 70 if jpeg and i % 2 else 0


def _both_paths(face: torch.Tensor, views, out_size, dtype):
    """The batched and the per-view render of ``views`` in ``dtype``, and the face's gradient of each
    (float64: the face shrunk for all views at once, as on a GPU; float32: one resize per view)."""
    from functools import partial

    from physadv.eot.sign_views import _render_views_each, render_views

    weights = None
    results = []
    for render in (partial(render_views, batched_shrink=dtype == torch.float64), _render_views_each):
        for v in views:
            v.base = v.base.to(dtype)
        leaf = face.to(dtype, copy=True).requires_grad_(True)
        out = render(leaf, views, out_size)
        if weights is None:  # a loss that weighs every output pixel differently
            weights = torch.rand(out.shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
        (out * weights).sum().backward()
        results.append((out.detach(), leaf.grad))
    return results


def test_a_batched_render_of_the_views_equals_rendering_each_view_alone():
    """The views of a step render as one batch on a common canvas (one warp, batched effects, one
    resize); the pixels and the face's gradient are those of rendering each view alone. In float64 to
    1e-5, JPEG included: in float32 the two paths differ by rounding, and a real JPEG codec turns a 1e-6
    change at a rounding boundary into a whole quantisation step, so float32 is checked without it — crops to
    1e-5, frames to 5e-5 (their face is sampled at up to 300 texels, where float32 coordinates round
    at 3e-5 texel: the per-view path is itself 2.7e-5 from a float64 render, docs/benchmarks.md)."""
    from physadv.eot.sign_views import draw_views

    face = torch.from_numpy(np.array(render_face("stop", 0.4))).permute(2, 0, 1)
    crops = draw_views(np.random.default_rng(5), 10, kind="crop", max_crop_px=40)
    frames = draw_views(np.random.default_rng(6), 4, kind="frame", frame_width=160)
    assert len({v.base.shape for v in crops}) > 1  # crops of several sizes share one canvas
    for views, out_size, tol32 in ((crops, (32, 32), 1e-5), (frames, (96, 128), 5e-5)):
        _every_effect_on(views, jpeg=True)
        (batched, grad), (each, grad_each) = _both_paths(face, views, out_size, torch.float64)
        assert batched.shape == (len(views), 3, *out_size)
        assert (batched - each).abs().max() < 1e-5 and (grad - grad_each).abs().max() < 1e-5
        assert grad[:3].abs().sum() > 0
        jpeg = [i for i, v in enumerate(views) if v.effects.jpeg_quality]
        # the codec did change those views (a batch that skipped it would not match the reference)
        _every_effect_on(views, jpeg=False)
        for v in views:
            v.cache.clear()
        (plain, _), _ = _both_paths(face, views, out_size, torch.float64)
        assert (plain[jpeg] - batched[jpeg]).abs().max() > 1e-3
        (batched, grad), (each, grad_each) = _both_paths(face, views, out_size, torch.float32)
        assert (batched - each).abs().max() < tol32 and (grad - grad_each).abs().max() < tol32


def test_a_texture_shrinks_for_many_sizes_at_once_as_one_size_at_a_time():
    """The batched shrink (two weighted sums per level, torch's own resize weights) gives each view's
    shrunk face as its own antialiased resize does, on a zero canvas, with the same gradient."""
    from physadv.scene.compose import Texture

    face = torch.from_numpy(np.array(render_face("stop", 0.4))).permute(2, 0, 1)  # 300 × 300
    sizes = [None, (150, 150), (181, 118), (77, 77), (40, 9), (4, 60), (150, 37), (19, 19)]
    weights = torch.rand(len(sizes), 4, 300, 300, generator=torch.Generator().manual_seed(1))
    got = []
    for batched in (True, False):
        leaf = face.clone().requires_grad_(True)
        canvas = Texture(leaf[None]).canvas(sizes, batched=batched)
        (canvas * weights).sum().backward()
        got.append((canvas.detach(), leaf.grad))
    (batched, grad), (each, grad_each) = got
    assert batched.shape == each.shape == (len(sizes), 4, 300, 300)
    assert (batched - each).abs().max() < 1e-5 and (grad - grad_each).abs().max() < 1e-4 * grad.abs().max()
    assert batched[4, :, 40:].abs().sum() == 0 and batched[4, :, :, 9:].abs().sum() == 0  # zero canvas
    assert torch.equal(batched[0], Texture(face[None]).at(None)[0])  # a size of None: the face as it is


def test_hide_loss_only_counts_candidates_over_the_sign():
    boxes = torch.tensor([[[10.0, 10, 50, 50], [100, 100, 140, 140]]])
    scores = torch.tensor([[[0.1, 0.3], [0.1, 0.9]]], requires_grad=True)
    sign = torch.tensor([[12.0, 12, 50, 52]])
    loss = hide_loss(Candidates(boxes, scores), sign, hidden_class=1)
    assert loss.item() == pytest.approx(0.3)  # the 0.9 candidate is elsewhere in the frame
    loss.backward()
    assert scores.grad[0, 0, 1] == 1 and scores.grad[0, 1].abs().sum() == 0
    logits = torch.tensor([[5.0, 1.0, 0.0], [0.0, 9.0, 2.0]])
    assert untargeted_margin(logits, 0, kappa=5).item() == pytest.approx((4 + -5) / 2)
    assert box_iou(torch.tensor([0.0, 0, 10, 10]), torch.tensor([5.0, 0, 15, 10])).item() == pytest.approx(
        1 / 3
    )
    # the broadcasting form equals torchvision's pairwise one on 2-D lists
    a = torch.tensor([[0.0, 0, 10, 10], [2, 3, 8, 20]])
    b = torch.tensor([[5.0, 0, 15, 10], [0, 0, 4, 4], [30, 30, 40, 40]])
    assert torch.allclose(box_iou(a[:, None], b[None]), torchvision.ops.box_iou(a, b), atol=1e-6)


def test_wilson_interval_reference_values():
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)


def test_verdicts_follow_armory_definitions():
    box = torch.tensor([10.0, 10, 50, 50])

    def dets(*rows):
        t = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
        return Detections(t[:, :4], t[:, 4], t[:, 5].long())

    tp = judge_object(dets([11, 11, 50, 50, 0.9, 1]), box, class_id=1)
    assert tp.true_positive and not tp.hidden
    wrong = judge_object(dets([11, 11, 50, 50, 0.9, 0]), box, class_id=1)
    assert wrong.misclassified and wrong.hidden and wrong.label == 0
    shifted = judge_object(dets([30, 30, 70, 70, 0.9, 1]), box, class_id=1)  # IoU 0.14: seen, not a TP
    assert not shifted.true_positive and not shifted.hidden
    low = judge_object(dets([11, 11, 50, 50, 0.1, 1]), box, class_id=1)
    assert low.hidden and not low.true_positive
    assert wrong.relabelled_as(0) and not wrong.relabelled_as(2)
    both = judge_object(dets([11, 11, 50, 50, 0.9, 0], [30, 30, 70, 70, 0.5, 1]), box, class_id=1)
    assert both.misclassified and not both.relabelled_as(0)  # the sign's own class still overlaps it


def test_crop_centres_the_object_and_pads_at_edges():
    frame = torch.zeros(3, 100, 100)
    frame[:, 40:60, 40:60] = 1
    crop = crop_object(frame, (40, 40, 60, 60), (32, 32), fill=0.5)
    assert crop[:, 12:20, 12:20].min() > 0.9 and crop[:, :4, :4].max() < 0.1
    edge = crop_object(frame, (0, 0, 30, 30), (16, 16))
    assert edge.shape == (3, 16, 16)


def _config(**kw):
    from physadv.attacks.rp2 import StickerConfig

    base = dict(goal="untargeted", true_class=14, steps=6, batch=8, pool=8, lr=0.1, lambda_nps=0.0)
    return StickerConfig(**{**base, **kw})


def test_attack_lowers_its_loss_on_the_embedded_classifier(classifier):
    from physadv.attacks.rp2 import StickerAttack
    from physadv.printing.palette import Palette

    attack = StickerAttack(classifier, _config(steps=8, mask="blocks"), Palette.default().colours)
    sticker, record = attack.run()
    losses = [h["attack"] for h in record["history"]]
    assert losses[-1] < losses[0] - 0.5  # full batch: the same 8 views every step
    assert sticker.alpha.shape == (1, 128, 128) and sticker.image.min() >= 0 and sticker.image.max() <= 1
    assert record["sticker_area_fraction"] == pytest.approx(
        area_fraction(sticker.alpha, attack.face[3:]), abs=1e-4
    )


def test_graffiti_learns_its_places_then_colours_them(classifier, tmp_path):
    from physadv.attacks.rp2 import StickerAttack
    from physadv.printing.palette import Palette

    attack = StickerAttack(classifier, _config(steps=10, mask="graffiti"), Palette.default().colours)
    sticker, record = attack.run(tmp_path / "checkpoint.safetensors")
    history = record["history"]
    placing, colouring = history[:4], history[4:]  # 40 % of the steps find the places
    assert placing[0]["area"] == pytest.approx(0.15, abs=0.01)  # every cell starts at the budget's share
    assert all(h["area"] < 0.5 for h in placing) and len({h["area"] for h in colouring}) == 1
    assert colouring[0]["area"] == pytest.approx(record["sticker_area_fraction"], abs=1e-3)
    assert 0.10 < record["sticker_area_fraction"] <= 0.15
    cells = sticker.alpha[0].reshape(8, 16, 8, 16)
    # every kept cell is whole where it is on the sign: an alpha either fills a cell's sign or is absent
    face = torch.nn.functional.interpolate(attack.face[3:][None].float(), size=(128, 128), mode="bilinear")
    on_sign = (face[0, 0] > 0.5).reshape(8, 16, 8, 16)
    kept = cells.amax(dim=(1, 3)) > 0
    assert torch.equal((cells > 0) | ~kept[:, None, :, None], on_sign | ~kept[:, None, :, None])
    # resumed for longer: the places found in the first 4 steps stay, the colours go on
    colours = Palette.default().colours
    longer = StickerAttack(classifier, _config(steps=12, mask="graffiti"), colours)
    more, again = longer.run(tmp_path / "checkpoint.safetensors", resume=True)
    assert [h["step"] for h in again["history"]] == list(range(1, 13)) and again["history"][:10] == history
    assert torch.equal(more.alpha, sticker.alpha) and not torch.equal(more.image, sticker.image)
    with pytest.raises(PhysadvError, match="--steps 4 ends before the checkpoint's 4 steps that find"):
        StickerAttack(classifier, _config(steps=4, mask="graffiti"), colours).run(
            tmp_path / "checkpoint.safetensors", resume=True
        )


def test_one_rate_format_for_terminal_and_reports():
    """5/5 once read [56.5, 100.0] in eval's report (from rounded bounds) and [56.6, …] in patch's."""
    from physadv.harness.metrics import Rate
    from physadv.report.document import fmt_rate

    for k, n in [(5, 5), (0, 5), (19, 25), (133, 149)]:
        assert fmt_rate(Rate(k, n).as_dict()) == str(Rate(k, n))
    assert str(Rate(5, 5)) == "100.0% [56.6, 100.0] (5/5)" and fmt_rate(Rate(0, 0).as_dict()) == "—"


def test_interrupted_run_resumes_to_the_same_sticker(classifier, tmp_path):
    from physadv.attacks.rp2 import StickerAttack
    from physadv.printing.palette import Palette

    colours = Palette.default().colours
    whole, _ = StickerAttack(classifier, _config(pool=16), colours).run()
    ckpt = tmp_path / "checkpoint.safetensors"

    def stop_at_4(n, status, seen=[0]):  # noqa: B006 - a counter across calls
        seen[0] += n
        if seen[0] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StickerAttack(classifier, _config(pool=16), colours).run(ckpt, checkpoint_every=2, progress=stop_at_4)
    assert load_state(ckpt)["state"]["step"] == 4  # Ctrl-C wrote the steps since the last checkpoint
    resumed, record = StickerAttack(classifier, _config(pool=16), colours).run(ckpt, resume=True)
    assert [h["step"] for h in record["history"]] == list(range(1, 7))
    assert torch.allclose(resumed.image, whole.image, atol=1e-5)
    with pytest.raises(PhysadvError, match="different settings \\(lr\\)"):
        StickerAttack(classifier, _config(pool=16, lr=0.2), colours).run(ckpt, resume=True)


def test_sticker_cli_classifier_writes_printables_and_summary(tmp_path):
    from physadv.jobs.sticker_config import StickerJob

    out = tmp_path / "run"
    # settings from a file, flags typed on the command line override it
    (tmp_path / "run.yaml").write_text("untargeted: true\nscenes: false\ndpi: 72\nattack:\n  steps: 2\n")
    args = ["sticker", "--out", out, "--config", tmp_path / "run.yaml", "--steps", "3", "--pool", "8"]
    result = run_physadv(*args, "--batch", "8", "--eval-views", "12")
    assert result.returncode == 0, result.stderr
    job = StickerJob.from_yaml(out / "config.yaml")  # the resolved settings, read back
    assert job.untargeted and job.eval_views == 12 and (job.attack.steps, job.attack.batch) == (3, 8)
    made = json.loads((out / "sticker.json").read_text())["settings"]
    assert StickerJob.from_dict(made) == job  # the sticker carries the settings it was made with
    assert (made["attack"]["goal"], made["attack"]["true_class"]) == ("untargeted", 14)  # and the ids
    summary = json.loads((out / "summary.json").read_text())
    assert summary["goal"] == "untargeted" and summary["true_class"] == "stop"
    cond = summary["conditions"]["eot_heldout"]
    assert cond["frames"] == 12 and cond["clean_accuracy"]["n"] == 12
    assert 0.10 < summary["sticker_area_fraction"] <= 0.15 and summary["steps"] == 3
    from PIL import Image

    poster = Image.open(out / "poster.png")
    assert poster.size == (round(750 / 25.4 * 72),) * 2  # the sign face at true size
    for name in ("sticker_sheet.pdf", "placement_guide.pdf", "poster_letter.pdf", "checkpoint.safetensors"):
        assert (out / name).stat().st_size > 0
    assert "eot_heldout" in result.stdout
    # after the optimisation, nothing silent: the printables and the judging show their progress
    assert "writing the printables (72 dpi): 5/5 (100%)" in result.stdout
    assert "judging held-out views: 24/24 (100%)" in result.stdout  # clean and stuck, 12 views each


def test_sticker_cli_detector_hiding_and_errors(tmp_path):
    out = tmp_path / "det"
    result = run_physadv(
        "sticker",
        "--out",
        out,
        "--task",
        "detect",
        "--steps",
        "2",
        "--pool",
        "8",
        "--batch",
        "4",
        "--eval-views",
        "6",
        "--no-scenes",
        "--dpi",
        "72",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["goal"] == "hide" and summary["true_class"] == "stop sign"
    assert "clean_true_positive_rate" in summary["conditions"]["eot_heldout"]
    bad = run_physadv("sticker", "--out", tmp_path / "x", "--target", "speed limit 99", "--steps", "1")
    assert bad.returncode == 2 and "unknown class 'speed limit 99'" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    # the sign's own class as the target would report 100 % "targeted success" for doing nothing
    own = run_physadv("sticker", "--out", tmp_path / "y", "--target", "stop", "--steps", "1")
    assert own.returncode == 2 and "the target is the true class ('stop')" in own.stderr
    relabel = run_physadv("sticker", "--out", tmp_path / "z", "--task", "detect", "--target", "Stop_Sign")
    assert relabel.returncode == 2 and "the target is the true class ('stop sign')" in relabel.stderr
    few = run_physadv("sticker", "--out", tmp_path / "w", "--task", "detect", "--target", "cat")
    assert few.returncode == 2  # a 2-class model: every class is named, so the user can pick one
    assert "unknown class 'cat': the model's 2 classes are 'person', 'stop sign'" in few.stderr
    assert not any((tmp_path / d).exists() for d in "xyzw")  # refused before any work


@pytest.mark.slow  # two optimisations, one judged
def test_sticker_cli_ctrl_c_keeps_the_steps_and_reruns_are_refused_or_resumed(tmp_path):
    out = tmp_path / "run"
    args = ["sticker", "--out", out, "--untargeted", "--mask", "blocks", "--pool", "8", "--batch", "4"]
    args += ["--eval-views", "2", "--no-scenes", "--dpi", "72", "--checkpoint-every", "100"]
    stopped = interrupt_after_first_step(*args, "--steps", "20")
    assert stopped.returncode == 130 and "physadv: interrupted; what was written is kept" in stopped.stderr
    step = load_state(out / "checkpoint.safetensors")["state"]["step"]
    assert 1 <= step < 20  # written at Ctrl-C although no checkpoint was due before step 100
    # again without --resume: refused (it would start at 0 and overwrite the checkpoint)
    again = run_physadv(*args, "--steps", "20")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip() == (
        f"physadv: error: {out} holds a checkpoint at step {step} of this command: add --resume to "
        "continue it, or choose another --out"
    )
    # --resume with another goal: refused, naming what changed (old → new)
    other = run_physadv(*args, "--steps", "20", "--no-untargeted", "--target", "speed limit 45", "--resume")
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1
    assert (
        "different settings (goal, target): goal: 'untargeted' → 'targeted'; target: None → " in other.stderr
    )
    assert "choose another --out" in other.stderr and not (out / "summary.json").exists()
    # --resume with more steps (a fixed mask may run on for longer) continues from the checkpoint
    resumed = run_physadv(*args, "--steps", step + 1, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, step + 2))
    assert f"resumed at step {step}" in resumed.stdout
    finished = run_physadv(*args, "--steps", step + 1)  # a finished run counts the same
    assert finished.returncode == 2 and f"holds a checkpoint at step {step + 1}" in finished.stderr


def test_poster_starts_as_the_sign_and_stickers_start_grey(classifier):
    from physadv.attacks.rp2 import StickerAttack
    from physadv.printing.palette import Palette

    colours = Palette.default().colours
    poster = StickerAttack(classifier, _config(mask="poster", lr=0.0, steps=1), colours)
    image, _ = poster.run()
    assert torch.allclose(image.image, poster.face_small[:3])  # δ = 0 at the start (lr 0: no move)
    graffiti, _ = StickerAttack(classifier, _config(lr=0.0, steps=1), colours).run()
    assert torch.allclose(graffiti.image, torch.full_like(graffiti.image, 0.5))
