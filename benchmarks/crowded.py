"""PSF photometry against apertures on a crowded simulated field.

    python benchmarks/crowded.py                       # 1024², 3 frames, in a temporary folder
    python benchmarks/crowded.py --size 384 --density 20 --variation 0.1 --root DIR

Simulates a crowded field (``--density`` stars per arcmin² to the catalog's limit, more
below it; the FWHM ``--variation`` broader in the corners than at the centre), runs the
night with ``photometry.mode: optimal``, ``psf`` and ``subtracted``, and prints for each: crowded
stars (a neighbour within 2 FWHM at most 2 mag brighter) and isolated ones (none within
4 FWHM) above S/N 50: the median of measured minus true magnitude, its robust scatter and
the pulls' (:func:`fieldphot.validation.crowding_accuracy`), and the wall time per frame
of each run.
"""

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import yaml

from fieldphot import synthetic, validation
from fieldphot.runner import run_night


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--density", type=float, default=20.0, help="stars per arcmin^2")
    ap.add_argument("--variation", type=float, default=0.3, help="FWHM growth, centre to corners")
    ap.add_argument("--root", type=Path, help="folder (default: temporary)")
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="fieldphot-crowded-"))
    cfg = dataclasses.replace(
        synthetic.CROWDED_NIGHT,
        nx=args.size,
        ny=args.size,
        n_science=args.frames,
        stars_per_arcmin2=args.density,
        psf_variation=args.variation,
    )
    night = synthetic.simulate_night(root, cfg)
    truth = validation.Truth(root)
    out = {"stars_simulated": len(night.stars)}
    for mode in ("optimal", "psf", "subtracted"):
        config = yaml.safe_load(night.config.read_text())
        config["photometry"] = {"mode": mode}
        start = time.perf_counter()
        run_night(config, root / mode, processes=1)
        per_frame = (time.perf_counter() - start) / args.frames
        out[mode] = validation.crowding_accuracy(root / mode, truth)
        out[mode]["wall_s_per_frame"] = round(per_frame, 1)
    print(json.dumps(out, indent=2))
    print(
        f"# python benchmarks/crowded.py --size {args.size} --frames {args.frames} "
        f"--density {args.density} --variation {args.variation} --root {root}"
    )


if __name__ == "__main__":
    main()
