"""Time and peak memory of the light-curve transpose at scale (issue: 2,000 frames x
10,000 stars in under 4 GB, aggregated per night first).

Writes ``--frames`` per-frame catalogs of ``--stars`` stars (constant stars with photon
noise, a transparency drift, a few gaps), split into ``--nights`` nights, then runs each
night's step (:func:`fieldphot.stages.night_light_curves`) and the across-nights step
(:func:`fieldphot.stages.light_curves`) in child processes, and prints each one's wall
time and peak resident memory (``ru_maxrss``).

    python benchmarks/transpose.py --frames 2000 --stars 10000 --nights 1
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fieldphot import io, layout


def write_catalogs(root: Path, n_frames: int, n_stars: int, n_nights: int) -> dict:
    """Per-frame catalogs with the columns the light curves read; returns night -> paths."""
    rng = np.random.default_rng(1)
    mag_true = rng.uniform(11, 19, n_stars)
    flux = 10 ** (-0.4 * (mag_true - 25)) * 60
    err = 1.0857 * np.sqrt(flux + 400) / flux
    ids = np.arange(1, n_stars + 1)
    base = pd.DataFrame(
        {
            "id": ids,
            "target": "",
            "ra": rng.uniform(150, 150.5, n_stars),
            "dec": rng.uniform(20, 20.5, n_stars),
            "mag_cat": mag_true,
            "color": rng.normal(0.6, 0.2, n_stars),
        }
    )
    out = {}
    per_night = -(-n_frames // n_nights)
    for f in range(n_frames):
        night = f"2024{3 + f // per_night:02d}15"
        k = f % per_night
        bjd = 2460384.5 + (f // per_night) * 30 + k * 30 / 86400
        drift = 0.05 * np.sin(k / 50)
        t = base.copy()
        t["x"] = rng.uniform(0, 4095, n_stars).astype(np.float32)
        t["y"] = rng.uniform(0, 4095, n_stars).astype(np.float32)
        t["sky"] = 400.0
        t["snr"] = 1.0857 / err
        t["mag_inst_err"] = err
        t["mag_inst"] = mag_true - 25 + drift + rng.normal(0, err)
        t["mag_err"] = err
        t["mag"] = t["mag_inst"] + 25 - drift
        t["mag_lim"] = np.nan
        t["detected"] = True
        t["flags"] = np.where(rng.random(n_stars) < 0.01, 8, 0).astype(np.int32)
        t = t[rng.random(n_stars) > 0.005]  # a few stars off this frame
        meta = {
            "status": "ok",
            "frame": {
                "frame": f"f{f:05d}",
                "night": night,
                "filter": "V",
                "bjd_tdb": bjd,
                "mjd_utc_mid": bjd - 2400000.5,
                "exptime": 30.0,
                "airmass": 1.2,
                "naxis1": 4096,
                "naxis2": 4096,
            },
        }
        path = root / layout.path("catalogs", night=night, frame=f"f{f:05d}")
        io.write_table(path, t, meta)
        out.setdefault(night, []).append(str(path))
    return out


def child(step: str, *args) -> tuple[float, float]:
    """Run ``stages.<step>(*args)`` in a fresh interpreter (the arguments passed as JSON on
    stdin); its wall time (s) and the children's peak RSS so far (GB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    code = f"import json, sys; from fieldphot import stages; stages.{step}(*json.load(sys.stdin))"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], input=json.dumps(args), text=True, check=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--stars", type=int, default=10000)
    ap.add_argument("--nights", type=int, default=1)
    ap.add_argument("--no-periodograms", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as d:
        root = Path(d)
        t0 = time.perf_counter()
        nights = write_catalogs(root, args.frames, args.stars, args.nights)
        print(
            f"wrote {args.frames} catalogs of {args.stars} stars: {time.perf_counter() - t0:.0f} s"
        )
        cfg = {"periodograms": not args.no_periodograms}
        parts = []
        for night, cats in nights.items():
            part = root / layout.path("night_lightcurves", night=night)
            parts.append(str(part))
            wall, peak = child("night_light_curves", cats, str(part), cfg)
            print(f"night {night} ({len(cats)} frames): {wall:.1f} s, peak RSS {peak:.2f} GB")
        wall, peak = child("light_curves", parts, str(root / "lightcurves"), cfg)
        print(
            f"across nights (summary{', periodograms' * bool(cfg['periodograms'])}): "
            f"{wall:.1f} s, peak RSS so far {peak:.2f} GB"
        )
        size = sum(Path(p).stat().st_size for p in parts) / 1e9
        print(f"long table: {args.frames * args.stars:,} rows, {size:.2f} GB on disk")


if __name__ == "__main__":
    main()
