"""Workflow overhead: the same night through snakemake and through a plain loop.

    python benchmarks/throughput.py --size 1024 --frames 30
    python benchmarks/throughput.py --night DIR   # a night simulated before (untimed)

(a) ``snakemake --cores 2`` on the night, (b) the same stage functions in a plain
2-process loop (:func:`fieldphot.runner.run_night`). Prints both wall times (simulation
excluded), the CPU seconds each spent (every process it started included), and their
ratios.
"""

import argparse
import resource
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
    t_wf, cpu_wf = timed(
        lambda: subprocess.run(snakemake_command(config, work, 2, "--quiet", "all"), check=True)
    )
    t_loop, cpu_loop = timed(
        lambda: runner.run_night(yaml.safe_load(config.read_text()), root / "loop", processes=2)
    )
    n = len(list((work / "results" / "catalogs").rglob("*.parquet")))
    print(f"{n} science frames ({config})")
    for name, t, cpu in (
        ("snakemake --cores 2", t_wf, cpu_wf),
        ("plain 2-process loop", t_loop, cpu_loop),
    ):
        print(f"{name:<21} {t:7.1f} s ({t / n:.2f} s/frame), CPU {cpu / n:.2f} s/frame")
    print(f"ratio workflow / loop: {t_wf / t_loop:.2f} (wall), {cpu_wf / cpu_loop:.2f} (CPU)")


def _cpu() -> float:
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(job) -> tuple[float, float]:
    """Wall and CPU seconds of ``job()``, its finished child processes' CPU included."""
    t0, c0 = time.perf_counter(), _cpu()
    job()
    return time.perf_counter() - t0, _cpu() - c0


if __name__ == "__main__":
    main()
