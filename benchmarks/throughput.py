"""Workflow overhead: the same night through snakemake and through a plain loop.

    python benchmarks/throughput.py --size 1024 --frames 30

(a) ``snakemake --cores 2`` on the night, (b) the same stage functions in a plain
2-process loop (:func:`fieldphot.runner.run_night`). Prints both wall times (simulation
excluded) and their ratio.
"""

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from fieldphot import runner, synthetic
from fieldphot.cli import snakemake_command


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--frames", type=int, default=30)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fieldphot-throughput-"))
    night = synthetic.simulate_night(
        root / "night",
        synthetic.SimConfig(
            nx=args.size,
            ny=args.size,
            n_science=args.frames,
            cadence=min(300.0, 6 * 3600.0 / args.frames),  # the night holds them all
        ),
    )
    work = root / "workflow"
    work.mkdir()
    t0 = time.perf_counter()
    subprocess.run(snakemake_command(night.config, work, 2, "--quiet", "all"), check=True)
    t_wf = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner.run_night(yaml.safe_load(night.config.read_text()), root / "loop", processes=2)
    t_loop = time.perf_counter() - t0
    print(f"{args.frames} frames of {args.size} x {args.size}")
    print(f"snakemake --cores 2: {t_wf:7.1f} s  ({t_wf / args.frames:.2f} s/frame)")
    print(f"plain 2-process loop: {t_loop:6.1f} s  ({t_loop / args.frames:.2f} s/frame)")
    print(f"ratio workflow / loop: {t_wf / t_loop:.2f}")


if __name__ == "__main__":
    main()
