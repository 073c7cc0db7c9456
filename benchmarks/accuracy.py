"""Accuracy of fieldphot against the simulator's truth on one simulated night.

    python benchmarks/accuracy.py --size 1024 --frames 30

Simulates a night, runs every stage in a plain 2-process loop (the workflow runs the same
functions) and prints the numbers of :func:`fieldphot.validation.report`.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from fieldphot import runner, synthetic, validation


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fieldphot-accuracy-"))
    night = synthetic.simulate_night(
        root, synthetic.SimConfig(nx=args.size, ny=args.size, n_science=args.frames, seed=args.seed)
    )
    t0 = time.perf_counter()
    runner.run_night(yaml.safe_load(night.config.read_text()), root / "results", processes=2)
    rep = validation.report(root / "results", root)
    rep["pipeline_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
