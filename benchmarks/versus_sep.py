"""CPU per frame: fieldphot's per-frame steps against a plain sep script doing the same.

    python benchmarks/versus_sep.py --nx 650 --ny 500 --frames 40
    python benchmarks/versus_sep.py --config night.yaml     # a real night's config
    python benchmarks/versus_sep.py --profile 15            # and the top 15 functions

The night is prepared untimed (manifest, masters, star list) with
:func:`fieldphot.runner.run_night`'s own functions. Then, frame by frame, in this one
process (no start-up counted for either):

(a) fieldphot: calibrate, extract, solve, photometer, zeropoint
    (:data:`fieldphot.steps.FRAME`), each step's CPU time;
(b) a plain sep script: read the raw frame, subtract the bias and dark masters, divide by
    the flat, sep background and detection, a 2 x FWHM aperture and a local sky annulus at
    every star of the first frame's detections (found again by nearest neighbour), and a
    zeropoint as the median offset of the bright stars from the first frame's magnitudes:
    the arithmetic a 150-line script does;
(c) the same script cleaning cosmic rays first (astroscrappy's L.A.Cosmic with its
    defaults on the whole frame, as ``ccdproc.cosmicray_lacosmic`` does): the one
    fieldphot step it skips that a script can do without an astrometric solution.

Prints the CPU seconds per frame of each, per step, and their ratios (issue 19 asks for
at most 3).
"""

import argparse
import cProfile
import io as _io
import pstats
import tempfile
import time
from pathlib import Path

import astroscrappy
import numpy as np
import sep
import yaml
from astropy.io import fits
from scipy.spatial import cKDTree

from fieldphot import config as cfgmod
from fieldphot import runner, steps, synthetic


def prepare(cfg: dict, results: Path) -> list[dict]:
    """The night up to its per-frame steps (untimed), each pointing's first frame first."""
    sci = runner.prepare_frames(cfg, results)
    first = (sci["anchor"] == sci["frame"]).to_numpy()
    return [*sci[first].to_dict("records"), *sci[~first].to_dict("records")]


def fieldphot_frames(rows, cfg, results) -> dict:
    """CPU seconds of each per-frame step, summed over the frames."""
    spent: dict[str, float] = {}
    params = runner.frame_params(cfg)
    for row in rows:
        for name in steps.FRAME:
            t0 = time.process_time()
            steps.run_frame(row, str(results), params, (name,))
            spent[name] = spent.get(name, 0.0) + time.process_time() - t0
    return spent


def _master(results: Path, rel: str):
    return fits.getdata(results / rel).astype(np.float32) if rel else None


def sep_frames(rows, results: Path, cosmic: bool = False) -> float:
    """CPU seconds of the plain sep script over the frames (``cosmic``: cleaning each
    frame with L.A.Cosmic, astroscrappy's defaults, as ccdproc's ``cosmicray_lacosmic``
    does, on the whole frame)."""
    t0 = time.process_time()
    ref_xy, ref_mag = None, None
    for row in rows:
        with fits.open(row["path"], memmap=False) as hdul:
            raw = hdul[0].data.astype(np.float32)
        if row.get("trimsec"):
            rs, cs = runner.stages.cal.parse_section(row["trimsec"])
            raw = raw[rs, cs]
        data = raw * np.float32(row["gain"])
        bias, dark, flat = (_master(results, row[f"{k}_master"]) for k in ("bias", "dark", "flat"))
        if bias is not None and bias.shape == data.shape:
            data -= bias
        if dark is not None and dark.shape == data.shape:
            data -= dark * np.float32(row["exptime"])
        if flat is not None and flat.shape == data.shape:
            data /= np.where(flat > 0.05, flat, 1.0)
        if cosmic:
            data = astroscrappy.detect_cosmics(
                data,
                gain=1.0,
                readnoise=float(np.nan_to_num(row["read_noise"], nan=5.0)),
                satlevel=np.inf,
            )[1]
        bkg = sep.Background(data)
        sub = data - bkg.back()
        objs = sep.extract(sub, 5.0, err=bkg.globalrms, minarea=5)
        if len(objs) == 0:
            continue
        fwhm = float(np.median(2.0 * np.sqrt(np.log(2) * (objs["a"] ** 2 + objs["b"] ** 2))))
        xy = np.column_stack([objs["x"], objs["y"]])
        if ref_xy is None:
            ref_xy = xy
        d, i = cKDTree(xy).query(ref_xy)  # every star of the first frame, found again
        x, y = xy[i, 0], xy[i, 1]
        r = 2.0 * fwhm
        flux, ferr, _ = sep.sum_circle(sub, x, y, r, err=bkg.globalrms, gain=1.0)
        sky, _, _ = sep.sum_circann(sub, x, y, 3 * r, 5 * r)
        area_ratio = r**2 / ((5 * r) ** 2 - (3 * r) ** 2)
        flux = flux - sky * area_ratio
        mag = -2.5 * np.log10(np.clip(flux, 1e-9, None))
        if ref_mag is None:
            ref_mag = mag
        good = (d < 2.0) & (flux / np.maximum(ferr, 1e-9) > 50)
        _zp = float(np.median((ref_mag - mag)[good])) if good.any() else np.nan
    return time.process_time() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="a night's config (else a simulated night)")
    p.add_argument("--nx", type=int, default=650)
    p.add_argument("--ny", type=int, default=500)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--profile", type=int, default=0, help="print the top N functions")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fieldphot-versus-sep-"))
    if args.config:
        config = yaml.safe_load(args.config.read_text())
    else:
        sim = synthetic.SimConfig(nx=args.nx, ny=args.ny, n_science=args.frames, seed=3)
        config = yaml.safe_load(synthetic.simulate_night(root / "night", sim).config.read_text())
    cfg = cfgmod.with_defaults(config)
    results = root / "results"
    rows = prepare(cfg, results)
    profile = cProfile.Profile() if args.profile else None
    if profile:
        profile.enable()
    spent = fieldphot_frames(rows, cfg, results)
    if profile:
        profile.disable()
    plain = sep_frames(rows, results)
    plain_cr = sep_frames(rows, results, cosmic=True)
    n = len(rows)
    total = sum(spent.values())
    print(f"{n} frames of {rows[0]['naxis1']} x {rows[0]['naxis2']} ({results})")
    for name, t in spent.items():
        print(f"  fieldphot {name:<11} {t / n:7.3f} s per frame")
    print(f"fieldphot per-frame steps: {total / n:.3f} s CPU per frame")
    print(f"plain sep script:          {plain / n:.3f} s CPU per frame")
    print(f"ratio: {total / plain:.1f}")
    print(f"plain sep script with L.A.Cosmic: {plain_cr / n:.3f} s CPU per frame")
    print(f"ratio: {total / plain_cr:.1f}")
    if profile:
        out = _io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())


if __name__ == "__main__":
    main()
