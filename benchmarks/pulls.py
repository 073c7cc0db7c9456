"""Are a real night's errors honest? Pulls of its stars, by S/N and by their brightest pixel.

    python benchmarks/pulls.py RESULTS [--min-frames 8]

``RESULTS`` is a finished night's results folder (a workflow or ``fieldphot.runner`` run;
no truth needed). A star's pull on a frame is its ensemble magnitude's offset from the
star's weighted mean over the night, over that point's own error; for constant stars the
rms of the pulls is 1 when the errors are honest, whatever the exposure times mixed (the
rms over the median error is not). Most stars of a field are constant, so the median over
the stars of a bin is the measure (issue 19: within 1.3 for bright stars). Unflagged points
only (a night without a catalog has every point ``NO_ZEROPOINT``: that bit is ignored).

Printed: the median pull rms of the stars with a median S/N in each bin, then of the
S/N > 100 stars by their highest pixel (sky included, within 2 px of the star) as a
fraction of the frame's saturation level: non-linearity below that level shows here (points
the light-curve step flagged ``NONLINEAR`` are out: with ``lightcurves.nonlinear_fraction:
null`` in the night's config they are in).
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fieldphot import io, validation


def pull_table(results: Path, min_frames: int) -> pd.DataFrame:
    """Per star: points, median S/N, pull rms, highest pixel / saturation level."""
    columns = ["id", "frame", "mag_ens", "mag_ens_err", "flags", "snr", "peak"]
    lc = validation.light_curves(results, columns)
    frames, _ = io.read_table(results / "lightcurves" / "frames.parquet")
    saturation = frames.set_index("frame")["saturation_e"].astype(float)
    lc["peak_fraction"] = lc["peak"] / lc["frame"].astype(str).map(saturation)
    return validation.star_pulls(lc.drop(columns=["frame", "peak"]), min_frames)


def _print_bins(st: pd.DataFrame, column: str, edges, label: str) -> None:
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        b = st[(st[column] > lo) & (st[column] <= hi)]
        value = f"{np.median(b['pull_rms']):.2f}" if len(b) else "-"
        print(f"  {label} {lo:g}-{hi:g}: {value} ({len(b)} stars)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("--min-frames", type=int, default=8)
    args = p.parse_args()
    st = pull_table(args.results, args.min_frames)
    print(f"{len(st)} stars on at least {args.min_frames} frames ({args.results})")
    print("median pull rms by median S/N:")
    _print_bins(st, "snr", [10, 30, 100, 300, np.inf], "S/N")
    print("median pull rms of S/N > 100 stars by highest pixel / saturation level:")
    _print_bins(st[st["snr"] > 100], "peak_fraction", [0, 0.3, 0.5, 0.7, 0.85, np.inf], "peak")


if __name__ == "__main__":
    main()
