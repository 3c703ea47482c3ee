"""Progress when the output is a log, not a terminal: a line every few percent or every 30 s."""

from __future__ import annotations

import io

from physadv import progress
from physadv.progress import LogLines


def test_log_lines_every_five_percent_and_every_thirty_seconds(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    lines = LogLines("patch", 400, out)
    for step in range(1, 41):  # 10 % of the work, one step a second: lines at 5 % and 10 %
        now[0] += 1
        lines(1, f"loss {1 / step:.3f}")
    assert out.getvalue().splitlines() == [
        "patch: 20/400 (5%), 0:20 elapsed, ~6:20 left, loss 0.050",
        "patch: 40/400 (10%), 0:40 elapsed, ~6:00 left, loss 0.025",
    ]
    now[0] += 95  # a slow step: 30 s passed without crossing 5 %, so a line all the same
    lines(1)
    assert out.getvalue().splitlines()[-1].startswith("patch: 41/400 (10%), 2:15 elapsed")
    unknown = io.StringIO()
    count = LogLines("frames", None, unknown)
    count(5)
    count.close()
    assert unknown.getvalue() == "frames: 5, 0:00 elapsed\n"  # no total: count and time only


def test_progress_bar_writes_lines_when_not_a_terminal(capsys):
    with progress.progress_bar("rendering", 4) as advance:
        for _ in range(4):
            advance()
    assert capsys.readouterr().out.splitlines()[-1].startswith("rendering: 4/4 (100%)")


def test_time_left_after_a_resume_counts_this_sessions_steps_only(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    lines = LogLines("patch", 400, out)
    now[0] += 7  # loading the checkpoint
    lines(200, "resumed at step 200", resumed=True)  # done in an earlier session
    for _ in range(40):  # a second a step in this session
        now[0] += 1
        lines(1, "loss 0.1")
    assert out.getvalue().splitlines() == [
        "patch: 200/400 (50%), 0:00 elapsed, resumed at step 200",  # no estimate from nothing
        "patch: 220/400 (55%), 0:20 elapsed, ~3:00 left, loss 0.1",  # 180 steps × 1 s, not 0:16
        "patch: 240/400 (60%), 0:40 elapsed, ~2:40 left, loss 0.1",
    ]
