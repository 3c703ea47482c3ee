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


def load_checkpoint(path: Path, config: dict, may_change: tuple[str, ...] = ()) -> dict:
    """The saved state, if it was made with ``config`` (up to the keys in ``may_change``, such as a
    longer run's ``steps``); else a one-line error naming what changed."""
    saved = load_state(path, "attack checkpoint")
    if "config" not in saved:
        raise PhysadvError(f"'{path}' is not a physadv attack checkpoint")
    changed = sorted(k for k, v in config.items() if saved["config"].get(k) != v and k not in may_change)
    if changed:
        raise PhysadvError(
            f"checkpoint '{path}' was made with different settings ({', '.join(changed)}); "
            "rerun with the same options, or without --resume to start over"
        )
    return saved


def report_resumed(progress, step: int, steps: int) -> None:
    """Move a progress bar to where a checkpoint (already checked against the settings) left off."""
    if progress and step:
        progress(min(step, steps), f"resumed at step {step}")


def run_with_progress(attack, label: str, checkpoint: Path, resume: bool, checkpoint_every: int = 25):
    """``attack.run`` under a progress bar; a resumed run moves it to its checkpoint's step."""
    if not getattr(attack, "ranks", Ranks()).main:  # data parallel: rank 0 alone shows progress
        return attack.run(checkpoint, resume, checkpoint_every, None)
    with progress_bar(label, attack.config.steps) as advance:
        return attack.run(checkpoint, resume, checkpoint_every, advance)
