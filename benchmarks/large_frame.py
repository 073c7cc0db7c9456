"""Peak memory and time of every stage on one large frame, each stage in its own process.

    python benchmarks/large_frame.py --size 10000 --keep /tmp/large

Simulates a night of one ``--size`` x ``--size`` science frame with three bias, dark and
flat frames (the simulator itself needs about 75 bytes per pixel), then runs the manifest,
the masters and the per-frame stages as the workflow does, one fresh Python process per
stage, and prints each one's wall time and peak resident memory (``getrusage``). With
``--keep`` the simulated night is kept and reused on the next run.
"""

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from fieldphot import config as cfgmod
from fieldphot import layout, runner, steps, synthetic
from fieldphot import manifest as mf

STEPS = [
    "manifest",
    "bias",
    "dark",
    "flat",
    "calibrate",
    "extract",
    "solve",
    "starlist",
    "photometer",
]


def run_step(root: Path, step: str) -> None:
    """One stage of the night below ``root``, with the calls the plain-loop runner makes."""
    cfg = cfgmod.with_defaults(yaml.safe_load((root / "night" / "config.yaml").read_text()))
    r = root / "results"
    if step == "manifest":
        runner.prepare(cfg, r)
        return
    m = pd.read_parquet(r / layout.path("manifest"))
    if step in ("bias", "dark", "flat"):
        for _, mrow in mf.masters_table(m).iterrows():
            if mrow["kind"] == step:
                runner.build_master(m, mrow, r, cfg)
        return
    sci = m[(m["kind"] == "science") & (m["status"] == "ok")].iloc[:1]
    row = sci.iloc[0].to_dict()
    if step == "starlist":  # the frame is its field's only reference frame
        runner.build_starlist(f"{row['night']}/{row['frame']}", sci.assign(reference=True), r, cfg)
        return
    steps.run_frame(row, str(r), runner.frame_params(cfg), (step,))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10000)
    p.add_argument("--keep", type=Path, help="folder for the night, kept and reused")
    p.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # the child's one stage
    args = p.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="fieldphot-large-"))
    if args.step:
        t = time.perf_counter()
        run_step(root, args.step)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"{args.step:10s} {time.perf_counter() - t:7.1f} s  peak {peak / 1e9:5.2f} GB")
        return
    if not (root / "night" / "config.yaml").exists():
        t = time.perf_counter()
        synthetic.simulate_night(
            root / "night",
            synthetic.SimConfig(
                nx=args.size,
                ny=args.size,
                n_science=1,
                n_bias=3,
                n_dark=3,
                n_flat=3,
                stars_per_arcmin2=0.5,
                seed=5,
            ),
        )
        print(f"simulated {args.size}² in {time.perf_counter() - t:.0f} s")
    shutil.rmtree(root / "results", ignore_errors=True)
    print(
        f"{args.size} x {args.size}: {args.size**2 / 1e6:.0f} Mpx, 12 bytes/px = "
        f"{12 * args.size**2 / 1e9:.2f} GB for SCI + ERR + MASK"
    )
    for step in STEPS:
        cmd = [sys.executable, __file__, "--size", str(args.size), "--keep", str(root)]
        subprocess.run([*cmd, "--step", step], check=True)
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
