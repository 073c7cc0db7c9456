"""Plate solving: success rate and accuracy of the hint ladder, and astrometry.net's times.

    python benchmarks/solving.py --fields 300 --blind 5

1. ``--fields`` random star fields (:func:`fieldphot.synthetic.star_field`: 512-2048 px,
   0.3-3"/px, 0.5-8 stars/arcmin², any rotation, either parity, up to 2 px of corner
   distortion) solved from a header-like hint: RA/Dec off by up to half the frame, the
   pixel scale off by up to 5 %. Prints how many solve, and the rms of WCS-predicted vs
   true positions of every star on the frame (split by whether SIP terms were fitted).
2. ``--blind`` blind solves each of 1° and 2° fields rendered from the Tycho-2 index stars
   (needs tools/install-astrometry.sh), and one hopeless field (random points) with the
   default limits: wall-clock seconds.
"""

import argparse
import time

import numpy as np

from fieldphot import astrometrynet, extract, synthetic, validation
from fieldphot import solve as sol


def hint_fields(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    solved, rms, sip, seconds, failures = 0, [], [], [], []
    for _ in range(n):
        shape = tuple(int(v) for v in rng.choice([512, 1024, 2048], 2))
        src, ref, wcs = synthetic.star_field(
            rng,
            shape,
            rng.uniform(0.3, 3.0),
            rng.uniform(0, 360),
            bool(rng.random() < 0.5),
            distortion_px=rng.uniform(0, 2),
            stars_per_arcmin2=rng.choice([0.5, 2.0, 8.0]),
        )
        hints = synthetic.pointing_hint(
            wcs, shape, rng, rng.uniform(0, 0.5), rng.uniform(-0.05, 0.05)
        )
        t0 = time.perf_counter()
        fitted, _, info = sol.solve_frame(src, ref, shape, hints, methods=["hint"])
        seconds.append(time.perf_counter() - t0)
        if fitted is None:
            failures.append(f"{shape} {len(src)} sources: {info['reason']}")
            continue
        solved += 1
        rms.append(validation.star_field_rms(fitted, src, ref))
        sip.append(info["sip_degree"] > 0)
    rms, sip = np.array(rms), np.array(sip)
    print(
        f"hint: {solved}/{n} solved ({100 * solved / n:.1f} %); "
        f"seconds median {np.median(seconds):.3f}, max {max(seconds):.3f}"
    )
    print(
        f"  position rms vs truth, SIP fitted ({sip.sum()}): median {np.median(rms[sip]):.3f} "
        f"max {rms[sip].max():.3f} px; fewer than 40 matches ({(~sip).sum()}): median "
        f"{np.median(rms[~sip]) if (~sip).any() else np.nan:.3f} px"
    )
    for f in failures:
        print("  unsolved:", f)


def blind(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for width in (1.0, 2.0):
        times = []
        for _ in range(n):
            image, stars, wcs, _ = synthetic.index_star_field(rng, width)
            src, _ = extract.extract_sources(
                image, np.sqrt(image.clip(1) + 25), np.zeros(image.shape, int)
            )
            t0 = time.perf_counter()
            fitted, _, info = sol.solve_frame(src, stars, image.shape, {}, methods=["blind"])
            times.append(time.perf_counter() - t0)
            assert fitted is not None, info["reason"]
        print(
            f"blind {width:.0f} deg field: {n}/{n} solved, seconds median "
            f"{np.median(times):.1f}, max {max(times):.1f}"
        )
    x, y = rng.uniform(0, 1023, (2, 150))
    _, info = astrometrynet.solve_field(x, y, rng.uniform(1, 100, 150), (1024, 1024))
    print(f"hopeless field: gave up after {info['seconds']:.1f} s ({info['reason']})")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fields", type=int, default=300)
    p.add_argument("--blind", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    hint_fields(args.fields, args.seed)
    if args.blind:
        blind(args.blind, args.seed)


if __name__ == "__main__":
    main()
