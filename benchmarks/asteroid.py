"""fieldphot on simulated asteroid nights, against their truth.

    python benchmarks/asteroid.py             # simulate and run both nights in a temporary folder
    python benchmarks/asteroid.py --root DIR  # ... in DIR (kept; rerun reads what is there)

The rotating asteroid (``synthetic.ASTEROID_NIGHT``: 512², 60 frames over six hours, 2.4 h
period, 0.5"/min, passing 1" from a field star): the period and amplitude found against
the truth, the calibrated points' offset, rms and pulls (the points no star crosses), the
points flagged STAR_CROSSING and whether every frame with the star inside the aperture is
among them. The fast asteroid (``synthetic.TRAILED_NIGHT``: a 60 s trail of 9 px, three
times the 3 px FWHM): the total flux over the truth in the trail's aperture, and in a round
aperture of the same radius at the same place, corrected as a point source (what a
fixed-position pipeline measures), and the cost of one moving-target measurement.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from astropy.timeseries import TimeSeries

from fieldphot import io, moving, runner, synthetic
from fieldphot.flags import Flag
from fieldphot.lightcurves import BAD_FOR_SUMMARY


def night(root: Path, cfg: synthetic.SimConfig) -> Path:
    if not (root / "results" / "lightcurves" / "summary.parquet").exists():
        n = synthetic.simulate_night(root, cfg)
        runner.run_night(yaml.safe_load(n.config.read_text()), root / "results", processes=2)
    return root


def rotating(root: Path) -> dict:
    ts = TimeSeries.read(root / "results/lightcurves/targets/SIMROCK.ecsv", format="ascii.ecsv")
    truth = json.loads((root / "truth/params.json").read_text())["asteroid"]
    m = ts.to_pandas().merge(pd.read_parquet(root / "truth/asteroid.parquet"), on="frame")
    fit = ts.meta["rotation"]
    flags = m["flags"].to_numpy()
    flagged = (flags & int(Flag.STAR_CROSSING)) != 0
    good = ~flagged & ((flags & int(BAD_FOR_SUMMARY)) == 0)
    d = (m["mag"] - m["mag_true"])[good]
    pull = (d - np.median(d)) / m["mag_err"][good]
    inside = m["star_gap_px"] < 2 * m["fwhm"]
    return {
        "period_h": round(fit["period_h"], 4),
        "period_err_h": round(fit["period_err_h"], 4),
        "period_true_h": truth["period_h"],
        "period_off_pct": round(100 * (fit["period_h"] / truth["period_h"] - 1), 3),
        "amplitude": round(fit["amplitude"], 4),
        "amplitude_err": round(fit["amplitude_err"], 4),
        "amplitude_true": round(truth["amplitude"], 4),
        "amplitude_off_pct": round(100 * (fit["amplitude"] / truth["amplitude"] - 1), 2),
        "n_points": len(m),
        "n_star_crossing": int(flagged.sum()),
        "star_in_aperture_all_flagged": bool(flagged[inside].all()),
        "offset_mmag": round(1000 * float(np.median(d)), 2),
        "rms_mmag": round(1000 * float(np.std(d)), 2),
        "pull_std": round(float(np.std(pull)), 3),
        "max_abs_pull": round(float(np.max(np.abs(pull))), 2),
    }


def trailed(root: Path) -> dict:
    truth = pd.read_parquet(root / "truth/asteroid.parquet").set_index("frame")
    pill, disc, cost = [], [], []
    for path in sorted((root / "results/photometry").glob("*/*.parquet")):
        t, meta = io.read_table(path)
        row = t[t["target"] == "SIMROCK"]
        if not len(row) or row["flags"].iloc[0] & int(Flag.STAR_CROSSING | BAD_FOR_SUMMARY):
            continue
        row, info = row.iloc[0], meta["photometry"]
        sci, err, mask, _ = io.read_calibrated(root / "results/calibrated" / path.parent.name /
                                               f"{path.stem}.fits")  # fmt: skip
        main = int(np.argmin(np.abs(np.asarray(info["radii"]) - info["r_ap"])))
        growth = info["growth"][main]
        mid = (row["x"], row["y"])
        round_ = moving.measure(sci, err, mask, mid, mid, info["fwhm"], info["r_ap"],
                                (info["r_in"], info["r_out"]), growth)  # fmt: skip
        half = truth.loc[path.stem, "trail_px"] / 2
        angle = np.radians(70.0)  # any direction: the cost does not depend on it
        ends = [
            (mid[0] - s * half * np.cos(angle), mid[1] - s * half * np.sin(angle)) for s in (1, -1)
        ]
        start = time.perf_counter()
        annulus = (info["r_in"], info["r_out"])
        moving.measure(sci, err, mask, *ends, info["fwhm"], info["r_ap"], annulus, growth)
        cost.append(time.perf_counter() - start)
        pill.append(row["flux"] / truth.loc[path.stem, "flux_e"])
        disc.append(round_["flux"] / truth.loc[path.stem, "flux_e"])
    return {
        "n_frames": len(pill),
        "trail_px": round(float(truth["trail_px"].median()), 2),
        "trail_aperture_flux_over_truth": round(float(np.median(pill)), 4),
        "trail_aperture_worst": round(float(pill[int(np.argmax(np.abs(np.subtract(pill, 1))))]), 4),
        "round_aperture_flux_over_truth": round(float(np.median(disc)), 4),
        "ms_per_measurement": round(1000 * float(np.median(cost)), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, help="folder for the two nights (default: temporary)")
    args = ap.parse_args()
    base = args.root or Path(tempfile.mkdtemp(prefix="fieldphot-asteroid-"))
    out = {
        "rotating": rotating(night(base / "rotating", synthetic.ASTEROID_NIGHT)),
        "trailed": trailed(night(base / "trailed", synthetic.TRAILED_NIGHT)),
    }
    print(json.dumps(out, indent=2))
    print(f"# python benchmarks/asteroid.py --root {base}")


if __name__ == "__main__":
    main()
