"""Per-channel accuracy of fieldphot on a simulated one-shot-colour (Bayer) night.

    python benchmarks/colour.py             # simulate and run the tests' colour night
    python benchmarks/colour.py --root DIR  # a colour night already simulated and run in DIR
    python benchmarks/colour.py --mode psf --density 20   # PSF photometry on a crowded one
    python benchmarks/colour.py --mode psf --density 20 --frames 15   # its first 15 frames

Prints, per channel (R, G1, G2, B and the combined G): the largest offset of a frame's
calibrated magnitudes from the truth (median over its calibration stars), the median
fitted colour term against the simulator's and the largest departure from it over the
frames, the constant stars' rms over the noise model,
their median rms; the transit's depth and mid-time in each green and in G.
"""

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import yaml

from fieldphot import io, runner, synthetic, validation


def channel_numbers(root: Path) -> dict:
    results, truth = root / "results", validation.Truth(root)
    out: dict = {}
    for path in sorted(results.glob("catalogs/*/*.parquet")):
        cat, meta = io.read_table(path)
        used = cat[cat["used_in_zp"]]
        if not len(used):
            continue
        true = truth.frame(meta["frame"]["frame"]).loc[used["id"], "mag_true"].to_numpy()
        ch = out.setdefault(meta["frame"]["channel"], {"offsets": [], "terms": []})
        ch["offsets"].append(float(np.median(used["mag"] - true)))
        ch["terms"].append(meta["zeropoint"]["color_term"])
    report = {}
    for ch, v in out.items():
        report[ch] = {
            "max_abs_offset_mmag": round(1000 * float(np.max(np.abs(v["offsets"]))), 1),
            "color_term": round(float(np.median(v["terms"])), 3),
            "color_term_true": synthetic.CHANNEL_MODEL[ch[0]][1],
            "color_term_max_dev": round(
                float(np.max(np.abs(np.subtract(v["terms"], synthetic.CHANNEL_MODEL[ch[0]][1])))),
                3,
            ),
        }
    p = truth.params["transit"]
    for ch in ("R", "G1", "G2", "B", "G"):
        s = validation.constant_star_noise(results, truth, filter_name=ch)
        entry = report.setdefault(ch, {})
        entry.update(
            n_constant=len(s),
            rms_over_noise_model=round(float(np.median(s["rms"] / s["expected"])), 3),
            median_rms_mmag=round(1000 * float(np.median(s["rms"])), 2),
        )
        t, f, e = validation.flux_curve(results, p["id"], filter_name=ch)
        inside = np.abs(t - p["t0_bjd"]) < p["duration_d"] / 2
        if inside.sum() >= 5 and (~inside).sum() >= 5:  # (a night's first frames may miss it)
            t0, depth, err = validation.transit_fit(
                t, f, e, p["t0_bjd"] + 10 / 1440, p["duration_d"], p["ingress_d"]
            )
            entry.update(
                transit_depth_ratio=round(depth / p["depth"], 4),
                transit_depth_err_ratio=round(err / p["depth"], 4),
                transit_dt_min=round((t0 - p["t0_bjd"]) * 1440, 2),
            )
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, help="an already processed colour night")
    ap.add_argument("--mode", help="photometry.mode (default: the configuration's)")
    ap.add_argument("--density", type=float, help="stars per arcmin^2 (default: the night's)")
    ap.add_argument("--frames", type=int, help="science frames (default: the night's 50)")
    args = ap.parse_args()
    root = args.root
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="fieldphot-colour-"))
        sim = synthetic.COLOUR_NIGHT
        if args.density:
            sim = dataclasses.replace(sim, stars_per_arcmin2=args.density)
        if args.frames:
            sim = dataclasses.replace(sim, n_science=args.frames)
        night = synthetic.simulate_night(root, sim)
        config = yaml.safe_load(night.config.read_text())
        if args.mode:
            config.setdefault("photometry", {})["mode"] = args.mode
        runner.run_night(config, root / "results", processes=2)
    print(json.dumps(channel_numbers(root), indent=2))


if __name__ == "__main__":
    main()
