"""A matrix of bad input: each case is a small night with one fault in it, run end to end.

Each case asserts that the night finishes, that the bad input is named with its cause in
one line, and that the good frames' measurements equal a clean run's (the same frames,
the same masters: the same numbers). The faults are the classes seen by an adversarial
run (issue 20): names that collide or are not ASCII, non-finite pixels, a subframe, a
frame with no detections, bad flats, damaged files, linked and missing folders.
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits

from fieldphot import config, io, refcat, synthetic
from fieldphot.flags import Flag
from fieldphot.runner import run_night

SCI = [f"20240315.{i:04d}.fits" for i in range(10, 16)]  #: the science frames, in time order
FLATS = [f"20240315.{i:04d}.fits" for i in range(7, 10)]
DARK = "20240315.0004.fits"
LAST = SCI[-1]  #: the frame the single-frame faults hit (not one the star list is made of)


def _rewrite(path: Path, fn, dtype=np.float32) -> None:
    with fits.open(path) as hdul:
        data, header = hdul[0].data.astype(float), hdul[0].header.copy()
    data, header = fn(data, header)
    fits.PrimaryHDU(data.astype(dtype), header).writeto(path, overwrite=True)


def _sprinkle_inf(raw):
    rng = np.random.default_rng(3)
    yx = rng.integers(0, 256, (30, 2))

    def f(d, h):
        d[yx[:, 0], yx[:, 1] + 8] = np.inf  # in the imaging area (TRIMSEC starts at x = 9)
        return d, h

    _rewrite(raw / LAST, f)


def _subframe(raw):
    def f(d, h):
        h["TRIMSEC"] = "[9:200,1:200]"
        return d, h

    _rewrite(raw / LAST, f, np.uint16)


def _no_stars(raw):
    noise = np.random.default_rng(2).normal(0, 5, (256, 296))
    _rewrite(raw / LAST, lambda d, h: (1000.0 + noise, h), np.uint16)


def _one_flat(level_of):
    def case(raw):
        with fits.open(raw / DARK) as hdul:
            dark = hdul[0].data.astype(float)
        _rewrite(raw / FLATS[1], lambda d, h: (level_of(d, dark), h), np.uint16)

    return case


def _all_flats_constant(raw):
    for name in FLATS:
        _rewrite(raw / name, lambda d, h: (np.full(d.shape, 1000.0), h), np.uint16)


def _datasum(raw):
    with fits.open(raw / LAST) as hdul:
        hdul.writeto(raw / "x.fits", checksum=True)
    damaged = bytearray((raw / "x.fits").read_bytes())
    damaged[-5000] ^= 0xFF  # one byte of pixels changed in a copy
    (raw / LAST).write_bytes(bytes(damaged))
    (raw / "x.fits").unlink()


def _fpack(raw):
    with fits.open(raw / LAST) as hdul:
        hdus = [fits.PrimaryHDU(), fits.CompImageHDU(hdul[0].data, hdul[0].header)]
    fits.HDUList(hdus).writeto(raw / "last.fits.fz")
    (raw / LAST).unlink()
    damaged = bytearray((raw / "last.fits.fz").read_bytes())
    damaged[-20000:-19800] = bytes(b ^ 0x5A for b in damaged[-20000:-19800])
    (raw / "last.fits.fz").write_bytes(bytes(damaged))


def _collide(raw):
    for old, new in zip(SCI[:3], ("a b.fits", "a_b.fits", "a_b_1.fits"), strict=True):
        (raw / old).rename(raw / new)


def _non_ascii(raw):
    (raw / LAST).rename(raw / "M31_étoile_Ω.fits")


def _linked_folder(raw):
    elsewhere = raw.parent / "elsewhere"
    elsewhere.mkdir()
    for name in SCI[-2:]:
        (raw / name).rename(elsewhere / name)
    (raw / "linked").symlink_to(elsewhere)
    (raw / "linked" / "loop").symlink_to(raw)  # and a link back: walked once


def _dangling(raw):
    (raw / "gone.fits").symlink_to(raw / "moved-away.fits")


#: case: (fault, frames it renames {old: new}, the frame it is in or "", its status, cause)
CASES = {
    "names that collide": (_collide, {"0010": "a_b", "0011": "a_b_2", "0012": "a_b_1"}, "", "", ""),
    "a non-ASCII file name": (_non_ascii, {"0015": "M31__toile"}, "", "", ""),
    "inf pixels": (_sprinkle_inf, {}, "", "", ""),
    "a smaller TRIMSEC": (_subframe, {}, "20240315.0015", "ok", ""),
    "no detections": (_no_stars, {}, "20240315.0015", "no_wcs", "0 detected"),
    "a flat without light": (_one_flat(lambda d, dark: dark), {}, "", "", ""),
    "a saturated flat": (_one_flat(lambda d, dark: np.full(d.shape, 65535.0)), {}, "", "", ""),
    "no usable flat": (_all_flats_constant, {}, "", "", ""),
    "a DATASUM mismatch": (_datasum, {}, "20240315.0015", "bad", "the file's own DATASUM"),
    "a damaged fpack tile": (_fpack, {"0015": "last"}, "last", "bad", "damaged tile-compressed"),
    "a linked folder": (_linked_folder, {}, "", "", ""),
    "a link to nothing": (_dangling, {}, "", "", ""),
}
#: cases whose masters differ from the clean run's (a flat left out): close, not equal
NEW_MASTERS = {"a flat without light", "a saturated flat", "no usable flat"}


def _run(root: Path, base: Path, fault=None):
    raw = root / "raw"
    shutil.copytree(base / "raw", raw)
    if fault:
        fault(raw)
    cfg = yaml.safe_load((base / "config.yaml").read_text())
    run_night({**cfg, "raw_dir": str(raw)}, root / "results")
    frames, _ = io.read_table(root / "results" / "lightcurves" / "frames.parquet")
    manifest, _ = io.read_table(root / "results" / "manifest.parquet")
    return root / "results", frames.set_index("frame"), manifest.set_index("frame")


def _pulls(clean: Path, results: Path, old: str, new: str) -> np.ndarray:
    """|calibrated magnitude - the clean run's| / its error, for the catalog stars of a
    frame (the stars the field's star list adds from its stack are the same only where
    the stack is)."""
    (a,) = clean.glob(f"catalogs/*/{old}.parquet")
    (b,) = results.glob(f"catalogs/*/{new}.parquet")
    a, b = (io.read_table(p)[0].query("id > 0").set_index("id") for p in (a, b))
    assert len(a.index.intersection(b.index)) == len(a) > 20
    return ((b["mag"] - a["mag"]) / a["mag_err"]).abs().loc[a.index].to_numpy()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    sim = synthetic.SimConfig(nx=256, ny=256, n_science=6, n_bias=3, n_dark=3, n_flat=3, seed=5)
    synthetic.simulate_night(root / "base", sim)
    return root / "base", _run(root / "clean", root / "base")


@pytest.mark.parametrize("case", CASES)
def test_a_night_with_one_fault_finishes_and_names_it(clean, tmp_path, case, caplog):
    base, (clean_results, clean_frames, _) = clean
    fault, renamed, bad, status, cause = CASES[case]
    with caplog.at_level("WARNING"):
        results, frames, manifest = _run(tmp_path, base, fault)
    names = {f"20240315.{k}": v for k, v in renamed.items()}
    bad = names.get(f"20240315.{bad}", bad)
    expected = {names.get(f, f) for f in clean_frames.index}
    assert set(frames.index) == expected
    for frame in expected - {bad}:
        assert frames.loc[frame, "status"] == "ok", (frame, frames.loc[frame, "reason"])
    if bad:  # named with its cause, in one line
        assert frames.loc[bad, "status"] == status
        assert cause in frames.loc[bad, "reason"] and "\n" not in frames.loc[bad, "reason"]
    # the good frames' magnitudes are the clean run's: the same within a small fraction
    # of their errors (the same masters; the star list's stack may differ by a frame),
    # or within their errors (a flat left out)
    every = []
    for old in clean_frames.index:
        new = names.get(old, old)
        if new == bad or case == "no usable flat":
            continue
        pulls = _pulls(clean_results, results, old, new)
        every.append(pulls)
        if case not in NEW_MASTERS:
            assert np.nanmedian(pulls) < 0.1 and np.nanmean(pulls < 0.5) > 0.8, (old, pulls)
    if case in NEW_MASTERS and every:
        assert np.nanmedian(np.concatenate(every)) < 0.5
    if case in ("a flat without light", "a saturated flat"):
        assert f"flat master: left out {tmp_path / 'raw' / FLATS[1]}" in caplog.text
    if case == "no usable flat":
        assert "no usable flat frame among 3" in caplog.text
        assert (frames["cal_flags"].astype(int) & int(Flag.NO_CALIBRATION)).all()
    if case == "inf pixels":
        assert "saturat" not in caplog.text
    if case == "a link to nothing":
        assert manifest.loc["gone", "reason"].endswith("gone.fits: a link to a missing file")


def test_a_catalog_giving_one_id_to_two_stars_is_refused_in_one_line():
    table = pd.DataFrame(
        {"n": [1, 1, 2, 2], "ra": [10.0, 10.0, 10.01, 10.02], "de": 5.0, "V": [10, 10, 11, 12]}
    )
    cols = {"id": "n", "ra": "ra", "dec": "de", "mag": "V"}
    with pytest.raises(ValueError, match=r"^reference catalog: id column 'n' gives the same id"):
        refcat.standardize(table, cols)
    table.loc[3, "n"] = 3  # the same star listed twice (a merged catalog): kept once
    assert refcat.standardize(table, cols)["id"].tolist() == [1, 2, 3]


def test_two_targets_writing_the_same_files_are_refused(tmp_path):
    targets = [{"name": "TOI 1", "ra": 1.0, "dec": 2.0}, {"name": "toi_1", "ra": 3.0, "dec": 4.0}]
    with pytest.raises(ValueError, match="targets 'TOI 1' and 'toi_1' would write the same"):
        config.check({"raw_dir": str(tmp_path), "targets": targets}, tmp_path.parent)


def test_the_plain_loop_leaves_out_the_frames_the_config_excludes(clean, tmp_path):
    """``exclude_frames`` (a file name here) in the plain loop as in the workflow: both take
    the frames to measure from ``manifest.science_frames``."""
    base, _ = clean
    cfg = yaml.safe_load((base / "config.yaml").read_text())
    cfg["exclude_frames"] = [SCI[2]]
    run_night(cfg, tmp_path / "results")
    frames, _ = io.read_table(tmp_path / "results" / "lightcurves" / "frames.parquet")
    assert set(frames["frame"]) == {s.removesuffix(".fits") for s in SCI} - {"20240315.0012"}
    assert not list((tmp_path / "results").glob("*/*/20240315.0012.*"))
