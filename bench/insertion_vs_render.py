"""Does a sticker put into a recording by tracking do what the same sticker does rendered into the
scene? Per-frame verdicts of two `physadv eval` runs on the same drive-by, compared frame by frame.

    physadv scene render scenes/driveby_stop.yaml --out runs/driveby
    physadv eval scenes/driveby_stop.yaml --artefact STICKER.png --out runs/cmp_render
    physadv eval runs/driveby/scene.mp4 --track 302,229,329,256 --artefact STICKER.png --out runs/cmp_track
    python bench/insertion_vs_render.py runs/cmp_render runs/cmp_track

Prints, per condition, the share of frames whose verdict (true positive or not) agrees, each run's
true-positive rate, and the frames that disagree with their distance.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def verdicts(folder: Path, condition: str) -> dict[int, tuple[bool, float]]:
    with open(folder / "frames.csv", newline="") as f:
        return {
            int(r["frame"]): (r["verdict"] == "true_positive", float(r["distance_m"] or "nan"))
            for r in csv.DictReader(f)
            if r["condition"] == condition and r["object"] != ""
        }


def main(rendered: Path, tracked: Path) -> None:
    for condition in ("clean", "attacked"):
        a, b = verdicts(rendered, condition), verdicts(tracked, condition)
        both = sorted(set(a) & set(b))
        agree = sum(a[i][0] == b[i][0] for i in both)
        print(
            f"{condition}: verdicts agree in {agree}/{len(both)} frames ({100 * agree / len(both):.1f} %); "
            f"true-positive rate rendered {100 * sum(a[i][0] for i in both) / len(both):.1f} %, "
            f"inserted by tracking {100 * sum(b[i][0] for i in both) / len(both):.1f} %"
        )
        differ = [
            f"{i} ({a[i][1]:.1f} m: rendered {'TP' if a[i][0] else 'miss'})"
            for i in both
            if a[i][0] != b[i][0]
        ]
        if differ:
            print("  differ:", ", ".join(differ))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
