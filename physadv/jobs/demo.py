"""``physadv demo``: the whole job on the embedded world, in one go.

1. an RP2 graffiti sticker that makes the embedded sign classifier read a stop sign as
   "speed limit 45", with its printables;
2. a person-hiding patch for the embedded YOLO, made on rendered people and in rendered streets (its
   physical size on the torso, physical EOT), with its printables;
3. replays: RP2's lab table and a drive-by with and without the sticker, pedestrians without the
   patch, with it and with a noise patch of the same size, each by distance;
4. three defenses (JPEG, median blur, Local Gradient Smoothing) against the patch, clean,
   non-adaptive and adaptive;
5. one report (``report.md`` and ``report.html``).

Each part writes its own folder and checkpoints, so an interrupted demo run again with the same
``--out`` continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from physadv.attacks.checkpoint import CHECKPOINT_NAME
from physadv.scene.spec import SHIPPED_SCENES

PATCH_MM = 600.0  # at 400 mm the embedded detector still finds 70 % of the street's people (docs/patches.md)


@dataclass
class Budget:
    """How much work each part does (``quick``: a smoke run of every part in a few minutes)."""

    sticker: dict = field(default_factory=dict)  # StickerConfig overrides; none: the command's defaults
    sticker_views: int = 100
    person_train: int = 320  # 160 people: 38.8 % in the street; 320: 25.4 % (docs/patches.md)
    person_val: int = 60
    patch_steps: int = 400
    street_frames: int = 32
    adaptive_steps: int = 100
    driveby_fps: int = 30
    pedestrian_frames: int = 60
    video: bool = True

    @classmethod
    def quick(cls) -> Budget:
        return cls(
            sticker={"steps": 8, "batch": 16, "pool": 16},
            sticker_views=16,
            person_train=16,
            person_val=8,
            patch_steps=6,
            street_frames=4,
            adaptive_steps=2,
            driveby_fps=6,
            pedestrian_frames=12,
            video=False,
        )


def _scene_copy(name: str, out: Path, edit) -> Path:
    """A scene spec from ``scenes/`` with ``edit`` applied, written into ``out``."""
    spec = yaml.safe_load((SHIPPED_SCENES / name).read_text())
    edit(spec)
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _forget_if_changed(checkpoint: Path, config: dict) -> None:
    """A demo run with other settings (``--quick`` after a full run) starts that part afresh
    instead of refusing the old checkpoint."""
    from physadv.errors import PhysadvError
    from physadv.statefile import load_state

    if checkpoint.is_file():
        try:
            same = load_state(checkpoint, "attack checkpoint").get("config") == config
        except PhysadvError:  # unreadable: start that part afresh as well
            same = False
        if not same:
            checkpoint.unlink()


def make_sticker(out: Path, budget: Budget, device: str) -> dict:
    from physadv.attacks.rp2 import StickerAttack, StickerConfig
    from physadv.jobs.sticker import Evaluation, run_sticker_job
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    victim = load_model("default", task="classify", device=device)
    config = StickerConfig(
        goal="targeted",
        true_class=victim.names.id("stop"),
        target=victim.names.id("speed limit 45"),
        mask="graffiti",
        **budget.sticker,
    )
    attack = StickerAttack(victim, config, Palette.default().colours)
    _forget_if_changed(out / CHECKPOINT_NAME, attack.config.as_dict())
    plan = Evaluation(views=budget.sticker_views, lab=None, driveby=None)  # the replays below do those
    return run_sticker_job(attack, out, plan, resume=True)


def replay_scene(
    spec: Path, out: Path, task: str, sticker: Path | None, patch: Path | None, budget, device, controls=None
) -> dict:
    """Replay a scene clean and with the artefact through the embedded model (as ``physadv eval``);
    ``controls``: more patches (name → PNG), e.g. the noise control."""
    from physadv.harness.frame_judge import ReplayGoal
    from physadv.harness.replay import Replay, Truth
    from physadv.harness.tally import Bins
    from physadv.jobs.replay import default_object_height_m, run_replay_job
    from physadv.models import load_model
    from physadv.printing.export import load_artefact_image
    from physadv.scene.signs import SIGNS

    model = load_model("default", task=task, device=device)
    if task == "classify":
        goal = ReplayGoal("classify", model.names.id("stop"), "stop", model.names.id("speed limit 45"))
        bins, height = Bins(), default_object_height_m("stop")
    else:
        goal = ReplayGoal("detect", model.names.id("person"), "person")
        bins, height = Bins((3.0, 6.0, 10.0, 15.0), "m"), default_object_height_m("person")
    stop = SIGNS["stop"]
    sticker_art = load_artefact_image(sticker, (stop.width_mm, stop.height_mm)) if sticker else None
    patch_art = load_artefact_image(patch, (PATCH_MM, PATCH_MM)) if patch else None
    extra = {name: load_artefact_image(png, (PATCH_MM, PATCH_MM)) for name, png in (controls or {}).items()}
    from physadv.harness.system import SystemRules
    from physadv.scene.spec import load_spec

    scene = load_spec(spec)
    speed = scene["driveby"]["speed_kmh"] if scene["kind"] == "driveby" else None
    replay = Replay(
        model,
        goal,
        bins,
        Truth(object_height_m=height),
        32 if model.device.type == "cuda" else 8,
        system=SystemRules(speed_kmh=speed),
    )
    return run_replay_job(
        replay, str(spec), out, "default", sticker_art, patch_art, annotate=budget.video, controls=extra
    )


def make_patch(out: Path, budget: Budget, device: str):
    """Rendered people and a street to train in, then the patch job. Returns (summary, detector, train
    set, held-out set)."""
    from physadv.attacks.person_patch import PatchAttack, PatchConfig
    from physadv.data.image_set import load_image_set
    from physadv.eot.person_scenes import ScenePeople
    from physadv.jobs.patch import run_patch_job
    from physadv.models import load_model
    from physadv.printing.palette import Palette
    from physadv.progress import progress_bar
    from physadv.scene.dataset import write_detection_set
    from physadv.scene.spec import load_spec

    persons = out / "persons"
    with progress_bar("rendering people", budget.person_train + budget.person_val) as advance:
        write_detection_set(persons, budget.person_train, budget.person_val, 11, advance, scene="persons")
    detector = load_model("default", task="detect", device=device)
    ids = [detector.names.id("person")]
    sets = [
        load_image_set(persons / "images" / s, detector.imgsz, ids, persons / "labels" / s, 16.0)[
            0
        ].with_objects()
        for s in ("train", "val")
    ]
    # the street to train in: the pedestrian scene's spec, drawn from seeds of its own (its replay
    # below, from the spec's seed, stays held out)
    with progress_bar("rendering street frames", budget.street_frames) as advance:
        street = ScenePeople(
            load_spec(SHIPPED_SCENES / "pedestrians.yaml"), budget.street_frames, 0.5, 0, advance
        )
    cuda = detector.device.type == "cuda"
    config = PatchConfig(["person"], size_mm=PATCH_MM, steps=budget.patch_steps, batch=32 if cuda else 8)
    attack = PatchAttack(
        [detector], config, sets[0], Palette.default().colours, model_names=["default"], scenes=street
    )
    _forget_if_changed(out / "patch" / CHECKPOINT_NAME, config.as_dict())
    summary = run_patch_job(attack, sets[1], out / "patch", PATCH_MM, resume=True)
    return summary, detector, sets[0], sets[1]


def run_demo(out: Path, quick: bool = False, device: str = "auto") -> dict:
    """Everything above; returns what the report shows (also in ``out/demo.json``)."""
    from physadv.attacks.person_patch import PatchConfig
    from physadv.defenses.catalogue import parse_defenses
    from physadv.jobs.defend_patch import run_patch_defenses
    from physadv.jobs.patch import NOISE_PNG
    from physadv.printing.export import load_artefact_image
    from physadv.printing.palette import Palette
    from physadv.report.demo_report import write_demo_report

    budget = Budget.quick() if quick else Budget()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: dict = {"quick": quick, "timings": {}}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        results["timings"][name] = round(now - clock[0], 1)
        clock[0] = now

    results["sticker"] = make_sticker(out / "sticker", budget, device)
    lap("sticker")
    sticker_png = out / "sticker" / "sticker.png"
    lab = SHIPPED_SCENES / "lab_rp2.yaml"
    driveby = _scene_copy(
        "driveby_stop.yaml", out / "scenes", lambda s: s["driveby"].update(fps=budget.driveby_fps)
    )
    results["lab"] = replay_scene(lab, out / "replay_lab", "classify", sticker_png, None, budget, device)
    results["driveby"] = replay_scene(
        driveby, out / "replay_driveby", "classify", sticker_png, None, budget, device
    )
    lap("sign replays")
    results["patch"], detector, train, val = make_patch(out, budget, device)
    lap("patch")
    patch_png = out / "patch" / "patch.png"
    pedestrians = _scene_copy(
        "pedestrians.yaml", out / "scenes", lambda s: s["pedestrians"].update(frames=budget.pedestrian_frames)
    )
    results["pedestrians"] = replay_scene(
        pedestrians,
        out / "replay_pedestrians",
        "detect",
        None,
        patch_png,
        budget,
        device,
        {"noise_control": patch_png.with_name(NOISE_PNG)},  # the noise patch the patch job judged
    )
    lap("pedestrian replay")
    patch = load_artefact_image(patch_png, (PATCH_MM, PATCH_MM)).image
    config = PatchConfig(
        ["person"], size_mm=PATCH_MM, steps=budget.adaptive_steps, batch=results["patch"]["config"]["batch"]
    )
    rows, _ = run_patch_defenses(
        detector,
        [detector.names.id("person")],
        parse_defenses("jpeg:75,median:3,lgs"),
        patch,
        train,
        val,
        config,
        Palette.default().colours,
        out / "defenses",
    )
    results["defenses"] = rows
    lap("defenses")
    results["seconds"] = round(time.perf_counter() - start, 1)
    results["device"] = str(detector.device)
    (out / "demo.json").write_text(json.dumps(results, indent=2, default=str))
    write_demo_report(out, results)
    return results
