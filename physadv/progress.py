"""Progress for long work: a live bar on a terminal (rich, bundled with typer), plain log lines
elsewhere.

Under CI, ``nohup``, a cluster scheduler or ``> log``, a live bar cannot redraw: rich would print it
once, at the end, so a 30-minute run would look dead until it finished. When standard output is not
a terminal, a line is written there instead every :data:`LOG_EVERY_PERCENT` % of the work and at
least every :data:`LOG_EVERY_SECONDS` seconds, e.g.
``patch: 120/400 (30%), 2:05 elapsed, ~4:51 left, loss 0.412  still detected 35%``.

A resumed run moves the count to its checkpoint with ``advance(step, status, resumed=True)``: those
units were done in an earlier session, so the time left is estimated from the units done since this
session started (counting them would make the first estimates far too short).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

LOG_EVERY_PERCENT = 5
LOG_EVERY_SECONDS = 30.0


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 ("1 step", "3 steps")."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def steps_done(summary: dict, resumed: bool) -> str:
    """ "12 steps in 164 s on cpu": a run's steps and optimising time, which count the runs it resumed
    (the checkpoint carries both), so a resumed run says so."""
    line = f"{count(summary['steps'], 'step')} in {summary['seconds']:.0f} s on {summary['device']}"
    return line + (", with the run it resumed" if resumed else "")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class LogLines:
    """Progress as lines of text (for logs): ``advance(n, status, resumed)`` like the live bar's."""

    def __init__(self, description: str, total: int | None, stream=None):
        self.description, self.total, self.stream = description, total, stream or sys.stdout
        self.done, self.status = 0, ""
        self.start = self.last_time = time.monotonic()
        self.last_done = 0
        self.before = 0  # units done in an earlier session (a resumed run's checkpoint)

    def __call__(self, n: int = 1, status: str | None = None, resumed: bool = False) -> None:
        self.done += n
        if resumed:
            self.before += n
            self.start = time.monotonic()  # the clock of this session's own work
        self.status = self.status if status is None else status
        now = time.monotonic()
        step = (self.total or 0) * LOG_EVERY_PERCENT / 100
        crossed = step > 0 and self.done // step > self.last_done // step
        if crossed or now - self.last_time >= LOG_EVERY_SECONDS or self.done == self.total:
            self.write(now)

    def write(self, now: float) -> None:
        elapsed = now - self.start
        parts = [f"{self.description}: {self.done}"]
        if self.total:
            parts[0] += f"/{self.total} ({100 * self.done / self.total:.0f}%)"
        parts.append(f"{_clock(elapsed)} elapsed")
        if self.total and self.before < self.done < self.total:
            rate = elapsed / (self.done - self.before)  # seconds a unit, in this session
            parts.append(f"~{_clock(rate * (self.total - self.done))} left")
        if self.status:
            parts.append(self.status)
        print(", ".join(parts), file=self.stream, flush=True)
        self.last_time, self.last_done = now, self.done

    def close(self) -> None:
        """A last line when the work ended between two lines (or stopped early)."""
        if self.done != self.last_done or self.done == 0:
            self.write(time.monotonic())


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """``with progress_bar("rendering", n) as advance: advance()`` — one tick per unit of work;
    ``advance(n, status)`` also shows a short status text; ``advance(n, status, resumed=True)`` counts
    ``n`` units done in an earlier session (kept out of the time-left estimate). A live bar on a
    terminal, log lines otherwise (see the module docstring)."""
    if not Console().is_terminal:
        lines = LogLines(description, total)
        try:
            yield lines
        finally:
            lines.close()
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(n: int = 1, status: str | None = None, resumed: bool = False) -> None:
            if resumed:  # rich estimates from its samples: restart them (and the clock) here
                now = next(t for t in bar.tasks if t.id == task)
                shown = now.fields.get("status", "") if status is None else status
                bar.reset(task, completed=int(now.completed) + n, status=shown)
                return
            bar.update(task, advance=n, **({"status": status} if status is not None else {}))

        yield advance
