"""Attack checkpoints: safetensors + JSON (no pickle, see ``physadv.statefile``), written atomically,
and refused when the settings that made them changed."""

from __future__ import annotations

from pathlib import Path

from physadv.distributed import Ranks
from physadv.errors import PhysadvError
from physadv.progress import progress_bar
from physadv.statefile import load_state, save_state

CHECKPOINT_NAME = "checkpoint.safetensors"


def save_checkpoint(path: Path, config: dict, **state) -> None:
    """Write ``config`` and ``state`` to ``path``; a crash mid-write never leaves a broken file."""
    save_state(path, {"config": config, **state})


def setting_changes(saved: dict, config: dict, may_change: tuple[str, ...]) -> list[str]:
    """``key: old → new`` for each setting of ``config`` that differs from ``saved``'s."""
    return [
        f"{k}: {saved.get(k)!r} → {v!r}"
        for k, v in sorted(config.items())
        if saved.get(k) != v and k not in may_change
    ]


def load_checkpoint(path: Path, config: dict, may_change: tuple[str, ...] = ()) -> dict:
    """The saved state, if it was made with ``config`` (up to the keys in ``may_change``, such as a
    longer run's ``steps``); else a one-line error naming what changed (old → new)."""
    saved = load_state(path, "attack checkpoint")
    if "config" not in saved:
        raise PhysadvError(f"'{path}' is not a physadv attack checkpoint")
    changed = setting_changes(saved["config"], config, may_change)
    if changed:
        keys = ", ".join(c.split(":")[0] for c in changed)
        raise PhysadvError(
            f"checkpoint '{path}' was made with different settings ({keys}): {'; '.join(changed)}; "
            "resume with the checkpoint's settings (e.g. --config OUT/config.yaml), or choose another "
            "--out to start a new run"
        )
    return saved


def refuse_overwrite(checkpoint: Path) -> None:
    """Refuse a run without ``--resume`` into a folder that holds ``checkpoint``: it would start at
    step 0 and overwrite that work at its first save (a finished run counts the same). Cheap: call it
    before loading models.

    Raises:
        PhysadvError: one line naming the checkpoint's step and what to do.
    """
    if checkpoint.is_file():
        step = load_state(checkpoint, "attack checkpoint").get("state", {}).get("step", "?")
        raise PhysadvError(
            f"{checkpoint.parent} holds a checkpoint at step {step} of this command: add --resume to "
            "continue it, or choose another --out"
        )


def check_out(checkpoint: Path, config: dict, resume: bool, may_change: tuple[str, ...] = ()) -> None:
    """Refuse, before anything is written, a run that would lose or mix up ``checkpoint``'s work: one
    without ``resume`` (:func:`refuse_overwrite`) or one whose settings differ from the checkpoint's
    (outside ``may_change``, see :func:`load_checkpoint`).

    Raises:
        PhysadvError: one line: the checkpoint's step and what to do, or the settings that differ.
    """
    if not resume:
        refuse_overwrite(checkpoint)
    elif checkpoint.is_file():
        load_checkpoint(checkpoint, config, may_change)


def report_resumed(progress, step: int, steps: int) -> None:
    """Move a progress bar to where a checkpoint (already checked against the settings) left off."""
    if progress and step:
        progress(min(step, steps), f"resumed at step {step}", resumed=True)  # not in the time-left


def run_with_progress(attack, label: str, checkpoint: Path, resume: bool, checkpoint_every: int = 25):
    """``attack.run`` under a progress bar; a resumed run moves it to its checkpoint's step."""
    if not getattr(attack, "ranks", Ranks()).main:  # data parallel: rank 0 alone shows progress
        return attack.run(checkpoint, resume, checkpoint_every, None)
    with progress_bar(label, attack.config.steps) as advance:
        return attack.run(checkpoint, resume, checkpoint_every, advance)
