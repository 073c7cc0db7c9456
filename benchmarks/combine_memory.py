"""Peak memory and time of combining many large raw frames into a master bias.

    python benchmarks/combine_memory.py --frames 200 --size 4096

Writes ``--frames`` raw bias frames (uint16, with an overscan strip) to a scratch folder,
then builds the master with :func:`fieldphot.stages.master` exactly as the workflow does,
and prints the wall time and the peak resident memory of the combining process.
"""

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from fieldphot import config as cfgmod
from fieldphot import stages, steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--memory-mb", type=float, default=1024)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fieldphot-combine-"))
    rng = np.random.default_rng(0)
    n, over = args.size, 32
    rows = []
    for i in range(args.frames):
        raw = (1000 + rng.normal(0, 4, (n, n + over))).astype(np.uint16)
        path = root / f"bias{i:04d}.fits"
        fits.PrimaryHDU(raw).writeto(path)
        rows.append(
            {
                "path": str(path),
                "exptime": 0.0,
                "gain": 1.5,
                "saturate": 65535.0,
                "trimsec": f"[1:{n},1:{n}]",
                "biassec": f"[{n + 3}:{n + over},1:{n}]",
            }
        )
    del raw
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    cfg = steps.reads("master", cfgmod.with_defaults({"raw_dir": "."}))
    cfg["overscan"] = {"mode": "median", "order": 0}
    stages.master("bias", rows, root / "master.fits", cfg=cfg, memory_mb=args.memory_mb)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.frames} frames of {n} x {n}: {dt:.1f} s, peak RSS {peak:.0f} MB "
        f"(before combining {rss0:.0f} MB; budget {args.memory_mb:.0f} MB)"
    )
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
