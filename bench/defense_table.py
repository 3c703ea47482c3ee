"""One table of defenses from ``physadv defend`` runs, one group of runs per artefact.

``python bench/defense_table.py "patch=runs/defend/p" "sticker=runs/defend/a,runs/defend/b"`` reads
each folder's ``defenses.json`` and prints one Markdown table: per group (the artefact it was
measured against, first column) a row per defense (the bare model's row once), the clean,
non-adaptive, adaptive and strongest-attack rates with their 95 % Wilson intervals, the flag rates
of the defenses that raise alarms, and the cost in ms per frame. The runs must share the protocol:
within a group their bare-model rows must agree (same artefact, views or photos, seed), or the
script says which run differs and stops. Used for the table in README.md and docs/defenses.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _rate(entry: dict | None) -> str:
    if not entry:
        return "—"
    low, high = entry["ci95"]
    return f"{100 * entry['rate']:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def _short(entry: dict | None) -> str:
    return "—" if not entry else f"{100 * entry['rate']:.1f} %"


def _flags(row: dict) -> str:
    flagged = row.get("flagged")
    if not flagged:
        return "—"
    return " / ".join(_short(flagged.get(k)) for k in ("clean", "non_adaptive", "adaptive"))


def _name(row: dict) -> str:
    name = row["defense"]
    return (
        name.split(":", 1)[0] + ":" + Path(name.split(":", 1)[1]).stem
        if name.startswith("trained:")
        else name
    )


def merged_rows(folders: list[Path]) -> list[dict]:
    """Rows of every run, the bare model's once; exits with a message if the runs' bare rows differ."""
    rows, bare, seen = [], None, set()
    for folder in folders:
        path = folder / "defenses.json"
        if not path.is_file():
            sys.exit(f"defense_table: {path} not found (run physadv defend --out {folder} first)")
        data = json.loads(path.read_text())
        for row in data["rows"] if isinstance(data, dict) else data:
            if row["defense"] == "none":
                key = (row["clean"]["k"], row["non_adaptive"]["k"], row["clean"]["n"])
                if bare is not None and key != bare[0]:
                    sys.exit(
                        f"defense_table: {folder}'s bare-model row differs from {bare[1]}'s: not one protocol"
                    )
                if bare is None:
                    bare = (key, folder)
                    rows.insert(0, row)
                continue
            if row["defense"] not in seen:
                seen.add(row["defense"])
                rows.append(row)
    return rows


def _digital(row: dict) -> str:
    digital = row.get("digital")
    if not digital:
        return "—"
    return " / ".join(_short(digital.get(k, {}).get("adaptive")) for k in ("pgd", "cw_l2"))


def table(groups: dict[str, list[dict]]) -> str:
    with_digital = any(row.get("digital") for rows in groups.values() for row in rows)
    head = (
        "| against | defense | clean | non-adaptive | adaptive | strongest attack "
        "| flagged clean / non-adaptive / adaptive | ms/frame |"
    )
    if with_digital:
        head = head[: -len(" ms/frame |")] + " adaptive PGD / CW-L2 | ms/frame |"
    lines = [head, "|---" * (9 if with_digital else 8) + "|"]
    for label, row in ((label, row) for label, rows in groups.items() for row in rows):
        strongest = row.get("strongest") or min(
            (row[k] for k in ("non_adaptive", "adaptive")), key=lambda e: e["rate"]
        )
        cells = [
            label,
            _name(row),
            _rate(row["clean"]),
            _rate(row["non_adaptive"]),
            _rate(row["adaptive"]) + (" ⚠" if row.get("warnings") else ""),
            _short(strongest),
            _flags(row),
            *([_digital(row)] if with_digital else []),
            f"{row['ms_per_frame']:.0f}" if row.get("ms_per_frame") is not None else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compact(groups: dict[str, list[dict]]) -> str:
    """The README's form: short rates, no intervals."""
    lines = [
        "| against | defense | clean | non-adaptive → adaptive | flagged clean / adaptive | ms/frame |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in ((label, row) for label, rows in groups.items() for row in rows):
        flagged = row.get("flagged") or {}
        flags = f"{_short(flagged.get('clean'))} / {_short(flagged.get('adaptive'))}" if flagged else "—"
        warn = " ⚠" if row.get("warnings") else ""
        cells = [
            label,
            f"`{_name(row)}`",
            _short(row["clean"]),
            f"{_short(row['non_adaptive'])} → {_short(row['adaptive'])}{warn}",
            flags,
            f"{row['ms_per_frame']:.0f}" if row.get("ms_per_frame") is not None else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "groups", nargs="+", help="LABEL=FOLDER[,FOLDER…]: defend --out folders, one artefact"
    )
    parser.add_argument("--compact", action="store_true", help="short rates, no intervals (README)")
    args = parser.parse_args()
    groups = {}
    for group in args.groups:
        label, _, folders = group.rpartition("=")
        groups[label or "artefact"] = merged_rows([Path(f) for f in folders.split(",")])
    print(compact(groups) if args.compact else table(groups))


if __name__ == "__main__":
    main()
