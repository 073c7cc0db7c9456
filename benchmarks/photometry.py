"""Photometric accuracy against the simulator's truth: colour term, zeropoint bias, error
pulls, and the limiting magnitude against injected-star completeness.

    python benchmarks/photometry.py --size 512 --frames 10 --color-term 0.08

Simulates a night whose instrument band has a colour term, runs every stage in a plain
2-process loop with optimal apertures and a fitted colour term, and prints the numbers of
:mod:`fieldphot.validation` (the tests assert the same on a 512-pixel, 10-frame night).
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fieldphot import io, runner, synthetic, validation


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--color-term", type=float, default=0.08)
    p.add_argument("--mode", default="optimal", choices=["fixed", "fwhm", "optimal"])
    p.add_argument("--seed", type=int, default=23)
    p.add_argument("--injected", type=int, default=800, help="fake stars per frame tested")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fieldphot-photometry-"))
    sim = synthetic.SimConfig(
        nx=args.size,
        ny=args.size,
        n_science=args.frames,
        seed=args.seed,
        color_term=args.color_term,
    )
    night = synthetic.simulate_night(root, sim)
    cfg = yaml.safe_load(night.config.read_text())
    cfg["zeropoint"] = {"color_term": "fit"}
    cfg["photometry"] = {"mode": args.mode}
    runner.run_night(cfg, root / "results", processes=2)
    truth = validation.Truth(root)
    metas = [io.read_table(q)[1] for q in sorted((root / "results").glob("catalogs/*/*.parquet"))]
    z = pd.DataFrame([m["zeropoint"] for m in metas])
    w = 1 / z["color_term_err"] ** 2
    pulls = validation.error_pulls(root / "results", truth)
    zp = validation.zeropoint_offsets(root / "results", truth)
    frames = list(truth.frames.index)
    comp = [
        validation.completeness(root / "results", truth, f, n=args.injected)
        for f in frames[:: max(len(frames) // 3, 1)]
    ]
    print(
        json.dumps(
            {
                "color_term_true": args.color_term,
                "color_term_weighted_mean": float(np.sum(w * z["color_term"]) / np.sum(w)),
                "color_term_err_per_frame": float(z["color_term_err"].median()),
                "zp_minus_truth_mean_mmag": 1e3 * float(zp.mean()),
                "zp_minus_truth_max_abs_mmag": 1e3 * float(zp.abs().max()),
                "pulls_n": int(len(pulls)),
                "pulls_robust_sigma": float(1.4826 * np.median(np.abs(pulls - np.median(pulls)))),
                "pulls_sigma_within_5": float(np.std(pulls[np.abs(pulls) < 5])),
                "pulls_fraction_within_5": float(np.mean(np.abs(pulls) < 5)),
                "maglim_minus_m50": [round(c["maglim"] - c["m50"], 3) for c in comp],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
