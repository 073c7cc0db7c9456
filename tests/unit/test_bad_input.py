"""A night with broken frames completes; each bad frame gets a one-line reason; the raw
folder is byte-identical afterwards."""

import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from fieldphot import io, synthetic, validation
from fieldphot.calibration import parse_section
from fieldphot.flags import Flag

LARGE = 10_000  #: rows and columns of the large-format frame on the night
#: The night's peak memory, however large a frame: the frame's own float32 SCI and ERR and
#: int32 MASK are 12 bytes per pixel, and calibration, cosmic-ray cleaning, extraction and
#: photometry work on them a band of rows at a time. Measured: 3.28 GB for the night with
#: the 10k x 10k frame (33 bytes per pixel, the interpreter's own ~0.5 GB included); 11 GB
#: before the bands. One more frame-sized float64 copy anywhere would break this bound.
PEAK_BYTES_PER_PIXEL = 36


def _rewrite(path, fn):
    with fits.open(path) as hdul:
        data, header = hdul[0].data.astype(float), hdul[0].header.copy()
    data, header = fn(data, header)
    fits.PrimaryHDU(data.astype(np.float32), header).writeto(path, overwrite=True)


def _shift_wcs(d, h):
    h["CRVAL1"] += 1.0  # the header WCS is a degree off
    return d, h


def _large_frame(small, out, n: int, seed: int = 0) -> None:
    """An n x n raw frame: ``small``'s imaging area in its corner, the same sky and noise
    elsewhere, overscan at the bias level (a large-format camera on a night of small ones)."""
    with fits.open(small) as hdul:
        h, d = hdul[0].header.copy(), hdul[0].data
    (_, trim), (_, over) = parse_section(h["TRIMSEC"]), parse_section(h["BIASSEC"])
    level = {}
    for name, cols in (("sky", trim), ("bias", over)):
        v = d[:, cols].astype(float)
        level[name] = (np.median(v), 1.4826 * np.median(np.abs(v - np.median(v))))
    width = trim.start + n + (over.start - trim.stop) + (over.stop - over.start)
    big = np.empty((n, width), np.uint16)
    rng = np.random.default_rng(seed)
    for r0 in range(0, n, 500):
        rows = slice(r0, min(r0 + 500, n))
        big[rows] = rng.normal(*level["sky"], (rows.stop - r0, width))
        big[rows, -(over.stop - over.start) :] = rng.normal(*level["bias"], (rows.stop - r0, 1))
    big[: d.shape[0], : trim.stop] = d[:, : trim.stop]
    h["TRIMSEC"] = f"[{trim.start + 1}:{trim.start + n},1:{n}]"
    h["BIASSEC"] = f"[{width - (over.stop - over.start) + 1}:{width},1:{n}]"
    h["DATE-OBS"] = h["DATE-OBS"][:-1] + "7"
    fits.PrimaryHDU(big, h).writeto(out)


def _measured_frames(results) -> set:
    """Frames with a measurement in the light curves (a failed frame has only gaps)."""
    lc = validation.light_curves(results, ["frame", "flags"])
    return set(lc.loc[(lc["flags"] & int(Flag.NO_DATA)) == 0, "frame"].astype(str))


def _outside_results(root) -> set:
    """Every path under ``root`` but its results folder, and the names beside ``root``:
    where a header value used as a path (``../../x``) would write."""
    inside = {str(p) for p in root.rglob("*") if "results" not in p.relative_to(root).parts}
    return inside | {p.name for p in root.parent.iterdir()}


@pytest.fixture(scope="module")
def bad_night(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_night")
    night = synthetic.simulate_night(
        root / "night",
        synthetic.SimConfig(nx=256, ny=256, n_science=8, n_bias=3, n_dark=3, n_flat=3, seed=51),
    )
    sci = sorted(night.raw_dir.iterdir())[-8:]
    rng = np.random.default_rng(0)
    cases = {
        sci[0]: lambda d, h: (np.full(d.shape, np.nan), h),
        sci[1]: lambda d, h: (np.full(d.shape, 1000.0), h),
        sci[2]: lambda d, h: (np.where(rng.random(d.shape) < 0.9, 65535.0, d), h),
        sci[3]: lambda d, h: (1000 + rng.normal(0, 20, d.shape), h),  # clouds: no stars
        sci[4]: _shift_wcs,
    }
    for path, fn in cases.items():
        _rewrite(path, fn)
    (night.raw_dir / "empty.fits").write_bytes(b"")
    (night.raw_dir / "notes.fits").write_text("not a FITS file\n")
    whole = sci[6].read_bytes()
    (night.raw_dir / "truncated.fits").write_bytes(whole[: len(whole) // 3])  # a cut copy
    header_cases = {
        "noexp": lambda h: h.remove("EXPTIME"),
        "zeroexp": lambda h: h.set("EXPTIME", 0.0),
        "negexp": lambda h: h.set("EXPTIME", -5.0),
        "nodate": lambda h: h.remove("DATE-OBS"),
        "nofilter": lambda h: h.remove("FILTER"),
        # never used unsanitized in a path (the flat master's name holds the filter)
        "unsafe": lambda h: (h.set("FILTER", "V/../../x; rm -rf ~"), h.set("OBJECT", "a b/$(id)")),
    }
    with fits.open(sci[5]) as hdul:
        for name, edit in header_cases.items():
            h = hdul[0].header.copy()
            h["DATE-OBS"] = h["DATE-OBS"][:-1] + "7"  # no duplicate of sci[5]
            edit(h)
            fits.PrimaryHDU(hdul[0].data, h).writeto(night.raw_dir / f"{name}.fits")
    (night.raw_dir / "zz-copy.fits").write_bytes(sci[6].read_bytes())  # copied twice
    with fits.open(sci[7]) as hdul:  # binned 2x2 on a night whose calibrations are 1x1
        h, d = hdul[0].header.copy(), hdul[0].data.astype(float)
    ny, nx = (d.shape[0] // 2) * 2, (d.shape[1] // 2) * 2
    binned = d[:ny, :nx].reshape(ny // 2, 2, nx // 2, 2).mean(axis=(1, 3))
    h.update(XBINNING=2, YBINNING=2, XPIXSZ=2 * h["XPIXSZ"], CDELT1=2.0, CDELT2=2.0)
    h.update(CRPIX1=(h["CRPIX1"] - 0.5) / 2 + 0.5, CRPIX2=(h["CRPIX2"] - 0.5) / 2 + 0.5)
    h["DATE-OBS"] = h["DATE-OBS"][:-1] + "7"
    for key in ("TRIMSEC", "BIASSEC"):
        (x0, x1), (y0, y1) = [map(int, r.split(":")) for r in h[key].strip("[]").split(",")]
        h[key] = f"[{(x0 + 1) // 2}:{x1 // 2},{(y0 + 1) // 2}:{y1 // 2}]"
    fits.PrimaryHDU(binned.astype(np.float32), h).writeto(night.raw_dir / "binned.fits")
    _large_frame(sci[6], night.raw_dir / "large.fits", LARGE)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in night.raw_dir.iterdir()}
    outside = _outside_results(root)
    # The night runs in a process of its own, so that its peak memory is measured.
    run = subprocess.run(
        [sys.executable, "-c", RUN_NIGHT, str(night.config), str(root / "results")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in night.raw_dir.iterdir()}
    frames, _ = io.read_table(root / "results" / "lightcurves" / "frames.parquet")
    manifest, _ = io.read_table(root / "results" / "manifest.parquet")
    return {
        "outside": (outside, _outside_results(root)),
        "sci": [p.name.removesuffix(".fits") for p in sci],
        "before": before,
        "after": after,
        "frames": frames.set_index("frame"),
        "manifest": manifest.set_index("frame"),
        "measured": _measured_frames(root / "results"),
        "astrometry": next((root / "results" / "astrometry").iterdir()),
        "results": root / "results",
        "log": run.stderr,
        "peak_rss": int(run.stdout.split()[-1]) * 1024,  # ru_maxrss is in KiB
    }


RUN_NIGHT = """
import resource, sys, yaml
from fieldphot import runner
runner.run_night(yaml.safe_load(open(sys.argv[1])), sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_raw_folder_untouched(bad_night):
    assert bad_night["before"] == bad_night["after"]


def test_a_frame_binned_unlike_its_calibrations_is_flagged_not_miscalibrated(bad_night):
    row = bad_night["manifest"].loc["binned"]
    assert row["status"] == "ok" and row["binning"] == "2x2"
    assert row["bias_master"] == row["dark_master"] == row["flat_master"] == ""
    frame = bad_night["frames"].loc["binned"]
    assert int(frame["cal_flags"]) & Flag.NO_CALIBRATION


def test_a_large_format_frame_runs_in_bounded_memory(bad_night):
    """A 10k x 10k frame on a night of 256 x 256 ones: calibrated (no masters of its shape:
    flagged, one line naming the file), solved and measured, and the whole night's peak
    memory stays within a few bytes per pixel of that frame."""
    assert bad_night["manifest"].loc["large", "naxis2"] == LARGE
    frame = bad_night["frames"].loc["large"]
    assert frame["status"] == "ok" and int(frame["cal_flags"]) & Flag.NO_CALIBRATION
    assert "large.fits: calibrated without bias, dark, flat" in bad_night["log"]
    assert "large" in bad_night["measured"]
    print(f"night's peak memory {bad_night['peak_rss'] / 1e9:.2f} GB")
    assert bad_night["peak_rss"] < PEAK_BYTES_PER_PIXEL * LARGE**2


def test_header_values_never_reach_a_path_unsanitized(bad_night):
    row = bad_night["manifest"].loc["unsafe"]
    assert row["status"] == "ok" and row["filter"] == "V/../../x; rm -rf ~"
    assert re.fullmatch(r"[A-Za-z0-9._+-]+", row["setup"]) and row["kind"] == "science"
    before, after = bad_night["outside"]
    assert after == before  # nothing written outside the results folder
    written = list(bad_night["results"].rglob("*"))
    assert not any(c in p.name for p in written for c in " ;$~")
    assert "unsafe" in set(bad_night["frames"].index)  # it ran (no flat in that filter)


@pytest.mark.parametrize(
    "frame, reason",
    [
        ("empty", "empty.fits: not a readable FITS file"),
        ("notes", "notes.fits: not a readable FITS file"),
        ("truncated", "truncated.fits: truncated FITS file"),
        ("noexp", "noexp.fits: exposure time (tried EXPTIME"),
        ("zeroexp", "zeroexp.fits: exposure time 0.0 s is not positive"),
        ("negexp", "negexp.fits: exposure time -5.0 s is not positive"),
        ("nodate", "nodate.fits: start time (tried DATE-OBS"),
        ("nofilter", "nofilter.fits: filter (tried FILTER"),
        ("zz-copy", "zz-copy.fits: duplicate of "),
    ],
)
def test_unreadable_files_listed_in_the_manifest(bad_night, frame, reason):
    row = bad_night["manifest"].loc[frame]
    assert row["status"] == "bad" and reason in row["reason"] and "\n" not in row["reason"]


@pytest.mark.parametrize(
    "index, status, reason",
    [
        (0, "bad", "no finite pixels"),
        (1, "bad", "constant image"),
        (2, "bad", "% of pixels saturated"),
        (3, "no_wcs", ""),
    ],
)
def test_bad_frames_flagged_with_a_reason(bad_night, index, status, reason):
    frame = bad_night["sci"][index]
    row = bad_night["frames"].loc[frame]
    assert row["status"] == status and reason in row["reason"] and row["reason"]
    assert "\n" not in row["reason"]
    assert frame not in bad_night["measured"]


def test_a_header_wcs_a_degree_off_is_replaced_by_the_ladder(bad_night):
    """The header WCS fails verification and refinement; the header RA/Dec and the scale
    from XPIXSZ/FOCALLEN solve the frame (its pointing's first frame is unusable)."""
    frame = bad_night["sci"][4]
    assert bad_night["frames"].loc[frame, "status"] == "ok"
    _, meta = io.read_table(bad_night["astrometry"] / f"{frame}.parquet", columns=[])
    assert meta["astrometry"]["method"] == "hint"
    assert meta["astrometry"]["tried"][0].startswith("header: ")


def test_good_frames_complete(bad_night):
    good = bad_night["sci"][4:] + ["unsafe", "large"]  # with a wrong WCS too, now solved
    assert (bad_night["frames"].loc[good, "status"] == "ok").all()
    # The binned frame has no masters and no zeropoint, but instrumental magnitudes: its
    # points are in the light curves, flagged.
    assert bad_night["measured"] == set(good) | {"binned"}
