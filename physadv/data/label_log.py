"""What a reader of labels or ground truth dropped or changed, and why: counted by reason, with the
first few places (``file:line``), summarised in one line for the user."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

SHOWN = 5  # places named in the summary


@dataclass
class LabelLog:
    """Dropped boxes by reason, boxes clipped to the image, and the first places of each."""

    dropped: Counter = field(default_factory=Counter)
    clipped: int = 0
    kept: int = 0
    places: list[str] = field(default_factory=list)

    def drop(self, where: str, reason: str, kind: str | None = None) -> None:
        """Drop one box; ``kind`` groups reasons in the summary (default: the reason itself)."""
        self.dropped[kind or reason] += 1
        if len(self.places) < SHOWN:
            self.places.append(f"{where}: {reason}")

    def clip(self, where: str, detail: str) -> None:
        self.clipped += 1
        if len(self.places) < SHOWN:
            self.places.append(f"{where}: {detail}")

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self, what: str = "labels") -> str | None:
        """One line, or None when nothing was dropped or changed."""
        if not self.total_dropped and not self.clipped:
            return None
        parts = []
        if self.total_dropped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.dropped.most_common())
            parts.append(f"{self.total_dropped} box(es) dropped ({reasons})")
        if self.clipped:
            parts.append(f"{self.clipped} clipped to the image (a small overshoot)")
        more = " …" if self.total_dropped + self.clipped > len(self.places) else ""
        return f"{what}: {self.kept} box(es) kept, {'; '.join(parts)}; " + "; ".join(self.places) + more

    def as_dict(self) -> dict:
        return {
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "clipped": self.clipped,
            "first": list(self.places),
        }
