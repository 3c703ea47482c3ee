"""How calibration copes with a chart partly covered: the test suite's synthetic chart photo
(rendered, colour-shifted, warped, blurred, noised, a glare spot) with a skin-toned card over a share
of the swatches, read back by `read_chart`. Prints, per photo: swatches read wrong (ΔE2000 > 3 from
the truth), swatches left out, wrong ones that were kept, and the fitted matrix's largest error.

    python bench/calibration_cover.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_printing import TRUE_B, TRUE_M, synthetic_photo  # noqa: E402

from physadv.eot.colour import delta_e2000, rgb_to_lab  # noqa: E402
from physadv.errors import PhysadvError  # noqa: E402
from physadv.printing.calibrate import read_chart  # noqa: E402
from physadv.printing.chart import ChartLayout  # noqa: E402


def main() -> None:
    truth = np.clip(ChartLayout().colours @ TRUE_M.T + TRUE_B, 0, 1).astype(np.float32)
    print("seed  cover  light falloff  read wrong  left out  wrong but kept  max |M error|")
    for seed in (0, 3, 5):
        for cover, falloff in (
            (0.0, False),
            (0.0, True),
            (0.25, False),
            (0.25, True),
            (0.5, False),
            (0.7, False),
        ):
            photo = synthetic_photo(seed, cover=cover).astype(np.float32)
            if falloff:  # light falling off by a quarter across the photo
                photo *= np.linspace(0.75, 1.0, photo.shape[1])[None, :, None]
            try:
                r = read_chart(np.clip(photo, 0, 255).astype(np.uint8))
            except PhysadvError as exc:
                print(f"{seed:4d}  {cover:5.2f}  {falloff!s:13}  error: {str(exc)[:70]}…")
                continue
            de = delta_e2000(rgb_to_lab(torch.from_numpy(r.measured)), rgb_to_lab(torch.from_numpy(truth)))
            wrong = set(np.flatnonzero(de.numpy() > 3))
            left_out = set(np.flatnonzero(~r.trusted))
            m_err = float((r.transfer.matrix - torch.from_numpy(TRUE_M)).abs().max())
            print(
                f"{seed:4d}  {cover:5.2f}  {falloff!s:13}  {len(wrong):10d}  {len(left_out):8d}  "
                f"{len(wrong - left_out):14d}  {m_err:.4f}"
            )


if __name__ == "__main__":
    main()
