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
S/N > 100 stars by their highest calibrated pixel (sky included, within 2 px of the star)
as a fraction of the night's saturation level: non-linearity below that level shows here.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fieldphot import io, validation
from fieldphot.flags import Flag


def pull_table(results: Path, min_frames: int) -> pd.DataFrame:
    """Per star: points, median S/N, pull rms, highest pixel / saturation level."""
    lc = validation.light_curves(results, ["id", "frame", "mag_ens", "mag_ens_err", "flags", "snr"])
    lc = lc[((lc["flags"] & ~int(Flag.NO_ZEROPOINT)) == 0) & (lc["mag_ens_err"] > 0)]
    w = 1.0 / lc["mag_ens_err"] ** 2
    mean = (lc["mag_ens"] * w).groupby(lc["id"]).sum() / w.groupby(lc["id"]).sum()
    lc = lc.assign(pull=(lc["mag_ens"] - lc["id"].map(mean)) / lc["mag_ens_err"])
    lc = lc.merge(_peaks(results), on=["id", "frame"], how="left")
    st = lc.groupby("id").agg(
        n=("pull", "size"),
        p2=("pull", lambda p: (p**2).sum()),
        snr=("snr", "median"),
        peak=("peak", "max"),
    )
    st["pull_rms"] = np.sqrt(st["p2"] / (st["n"] - 1).clip(lower=1))
    frames, _ = io.read_table(results / "lightcurves" / "frames.parquet")
    st["peak_fraction"] = st["peak"] / float(frames["saturation_e"].median())
    return st[st["n"] >= min_frames]


def _peaks(results: Path) -> pd.DataFrame:
    """Each catalog star's highest calibrated pixel within 2 px, frame by frame."""
    cats = io.read_tables(
        sorted((results / "catalogs").rglob("*.parquet")), ["id", "frame", "x", "y"]
    )
    parts = []
    for path in sorted((results / "calibrated").rglob("*.fits")):
        sci = io.read_calibrated(path)[0]
        c = cats[cats["frame"] == path.stem]
        xi, yi = np.round(c["x"]).astype(int).to_numpy(), np.round(c["y"]).astype(int).to_numpy()
        ok = (xi >= 2) & (yi >= 2) & (xi < sci.shape[1] - 2) & (yi < sci.shape[0] - 2)
        peak = np.full(len(c), np.nan)
        peak[ok] = [
            sci[b - 2 : b + 3, a - 2 : a + 3].max() for a, b in zip(xi[ok], yi[ok], strict=True)
        ]
        parts.append(pd.DataFrame({"id": c["id"].to_numpy(), "frame": path.stem, "peak": peak}))
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["id", "frame", "peak"])
    )


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
