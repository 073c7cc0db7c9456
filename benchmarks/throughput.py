"""Workflow overhead: the same night through snakemake and through a plain loop.

    python benchmarks/throughput.py --size 1024 --frames 30
    python benchmarks/throughput.py --night DIR   # a night simulated before (untimed)

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
    p.add_argument("--night", type=Path, help="a night simulated before (its config.yaml)")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fieldphot-throughput-"))
    if args.night:
        config = args.night / "config.yaml"
    else:
        sim = synthetic.SimConfig(
            nx=args.size,
            ny=args.size,
            n_science=args.frames,
            cadence=min(300.0, 6 * 3600.0 / args.frames),  # the night holds them all
        )
        config = synthetic.simulate_night(root / "night", sim).config
    work = root / "workflow"
    work.mkdir()
    t0 = time.perf_counter()
    subprocess.run(snakemake_command(config, work, 2, "--quiet", "all"), check=True)
    t_wf = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner.run_night(yaml.safe_load(config.read_text()), root / "loop", processes=2)
    t_loop = time.perf_counter() - t0
    n = len(list((work / "results" / "catalogs").rglob("*.parquet")))
    print(f"{n} science frames ({config})")
    print(f"snakemake --cores 2: {t_wf:7.1f} s  ({t_wf / n:.2f} s/frame)")
    print(f"plain 2-process loop: {t_loop:6.1f} s  ({t_loop / n:.2f} s/frame)")
    print(f"ratio workflow / loop: {t_wf / t_loop:.2f}")


if __name__ == "__main__":
    main()
