"""Science failures become flagged outputs; reference catalogs load from every format."""

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table

from fieldphot import config, io, refcat, runner, stages, steps, synthetic, validation
from fieldphot.flags import Flag

#: The config every key of which has its default.
DEFAULTS = config.with_defaults({"raw_dir": "."})


def test_frame_without_wcs_flows_through_as_data(tmp_path):
    night = synthetic.simulate_night(
        tmp_path / "night",
        synthetic.SimConfig(nx=256, ny=256, n_science=3, n_bias=3, n_dark=3, n_flat=3, seed=31),
    )
    victim = sorted(night.raw_dir.iterdir())[-1]
    with fits.open(victim) as hdul:
        data, header = hdul[0].data.copy(), hdul[0].header.copy()
    for key in [k for k in header if k.startswith(("CTYPE", "CRVAL", "CRPIX", "PC", "CD"))]:
        del header[key]
    fits.PrimaryHDU(data, header).writeto(victim, overwrite=True)
    cfg = yaml.safe_load(night.config.read_text())
    cfg["solve"] = {"methods": ["header"], "relative": False}  # the others would solve it
    runner.run_night(cfg, tmp_path / "results")
    frame = victim.name.removesuffix(".fits")
    metas = {p: io.read_table(p)[1] for p in (tmp_path / "results").rglob(f"*/{frame}.parquet")}
    assert len(metas) == 4  # sources, astrometry, photometry, catalogs: all written
    statuses = {p.parent.parent.name: m["status"] for p, m in metas.items()}
    assert statuses["astrometry"] == "unsolved" and statuses["catalogs"] != "ok"
    frames, _ = io.read_table(tmp_path / "results" / "lightcurves" / "frames.parquet")
    row = frames.set_index("frame").loc[frame]
    assert row["status"] != "ok" and "WCS" in row["reason"]
    lc = validation.light_curves(tmp_path / "results")
    gap = lc[lc["frame"] == frame]  # every star has a flagged gap on the failed frame
    assert len(gap) == lc["id"].nunique() and (gap["flags"] & int(Flag.NO_DATA)).all()
    assert gap["mag_ens"].isna().all() and lc["frame"].nunique() == 3


def test_an_error_in_one_frames_step_flags_it_and_the_night_goes_on(tmp_path, monkeypatch):
    """The plain-loop runner (the library's ``run_night``) as the workflow: an unexpected
    error in one frame's step (a bug, or a library raising on odd data: photutils on a
    crowded colour frame stopped a whole benchmark night) flags that frame with its cause."""
    night = synthetic.simulate_night(
        tmp_path / "night",
        synthetic.SimConfig(nx=256, ny=256, n_science=3, n_bias=3, n_dark=3, n_flat=3, seed=32),
    )
    victim = sorted(night.raw_dir.glob("*.fits"))[-1].name.removesuffix(".fits")
    measure = stages.measure.measure_frame

    def broken(*args, **kwargs):
        if args[6]["frame"] == victim:  # measure_frame's frame
            raise ZeroDivisionError("a bug")
        return measure(*args, **kwargs)

    monkeypatch.setattr(stages.measure, "measure_frame", broken)
    runner.run_night(yaml.safe_load(night.config.read_text()), tmp_path / "results")
    frames, _ = io.read_table(tmp_path / "results" / "lightcurves" / "frames.parquet")
    frames = frames.set_index("frame")
    assert frames.loc[victim, "status"] == "bad"
    assert "photometer step" in frames.loc[victim, "reason"]
    assert "ZeroDivisionError: a bug" in frames.loc[victim, "reason"]
    assert (frames.drop(index=victim)["status"] == "ok").all() and len(frames) == 3


@pytest.mark.parametrize("fmt", ["parquet", "ecsv", "fits", "csv"])
def test_reference_catalog_formats(tmp_path, fmt):
    t = pd.DataFrame(
        {
            "src": [7, 8],
            "RAJ2000": [10.0, 10.1],
            "DEJ2000": [-5.0, -5.1],
            "Gmag": [12.0, 13.5],
            "e_Gmag": [0.01, 0.02],
            "BPmag": [12.4, 14.2],
        }
    )
    path = tmp_path / f"cat.{fmt}"
    if fmt == "parquet":
        t.to_parquet(path)
    elif fmt == "csv":
        t.to_csv(path, index=False)
    else:
        Table.from_pandas(t).write(path, format="ascii.ecsv" if fmt == "ecsv" else "fits")
    cols = {
        "id": "src",
        "ra": "RAJ2000",
        "dec": "DEJ2000",
        "mag": "Gmag",
        "mag_err": "e_Gmag",
        "color_mag": "BPmag",
    }
    out = refcat.standardize(io.read_any_table(path), cols)
    assert out["id"].tolist() == [7, 8] and np.allclose(out["color"], [0.4, 0.7])


def test_reference_catalog_missing_column_is_named():
    with pytest.raises(KeyError, match="no column 'Vmag' for mag"):
        refcat.standardize(
            pd.DataFrame({"ra": [1.0], "dec": [2.0]}), {"ra": "ra", "dec": "dec", "mag": "Vmag"}
        )


def test_a_night_whose_frames_all_failed_does_not_stop_the_others(tmp_path, capsys):
    """Two nights in one folder; every frame of the second has no usable WCS (header-only
    solving): it becomes a flagged night with empty products, the first night's light
    curves and the season's summary, frames table and plots are all written, and
    `fieldphot status` names the failed night and exits non-zero."""
    import shutil

    from fieldphot import cli

    small = dict(nx=256, ny=256, n_science=4, n_bias=3, n_dark=3, n_flat=3)
    good = synthetic.simulate_night(tmp_path / "a", synthetic.SimConfig(**small, seed=41))
    bad = synthetic.simulate_night(
        tmp_path / "b",
        synthetic.SimConfig(**small, seed=42, start="2024-03-17T03:00:00", write_wcs=False),
    )
    shutil.copytree(bad.raw_dir, good.raw_dir / "second")
    cfg = yaml.safe_load(good.config.read_text())
    cfg["solve"] = {"methods": ["header"], "relative": False}
    res = runner.run_night(cfg, tmp_path / "results")
    nights = sorted((tmp_path / "results" / "lightcurves" / "nights").glob("*.parquet"))
    assert len(nights) == 2
    failed = [p for p in nights if io.read_meta(p)["frames"][0]["status"] != "ok"]
    assert len(failed) == 1
    empty, meta = io.read_table(failed[0])
    assert len(empty) == 0 and all(f["status"] != "ok" for f in meta["frames"])
    summary, smeta = io.read_table(res["summary"])
    assert len(summary) > 20 and smeta["n_skipped"] >= 4
    assert summary["rms"].notna().sum() > 20  # the good night's ensemble light curves
    assert (tmp_path / "results" / "lightcurves" / "rms_mag.png").exists()
    frames, _ = io.read_table(tmp_path / "results" / "lightcurves" / "frames.parquet")
    assert len(frames) == 8 and (frames["status"] == "ok").sum() >= 3
    cfg_path = tmp_path / "night.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert cli.main(["status", str(cfg_path), "--workdir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no frame succeeded" in out and failed[0].stem in out


def test_a_frame_without_blank_sky_statistics_gets_its_zeropoint(tmp_path):
    """NaN blank-sky limits (a crowded or tiny frame) come back from the metadata as null:
    the zeropoint step crashed on them (TypeError) and stopped the frame."""
    rng = np.random.default_rng(3)
    n = 30
    inst = rng.uniform(-12, -8, n)
    t = pd.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.uniform(0, 100, n),
            "y": rng.uniform(0, 100, n),
            "mag_inst": inst,
            "mag_inst_err": np.full(n, 0.01),
            "mag_cat": inst + 25.0,
            "mag_cat_err": np.full(n, 0.01),
            "color": np.full(n, 0.5),
            "snr": np.full(n, 100.0),
            "flags": np.zeros(n, np.int32),
        }
    )
    meta = {
        "frame": {"frame": "f", "naxis1": 100, "naxis2": 100, "exptime": 1.0},
        "status": "ok",
        "photometry": {"maglim_inst": np.nan, "maglim_inst_analytic": np.nan},
    }
    io.write_table(tmp_path / "phot.parquet", t, meta)
    from fieldphot import stages

    stages.zeropoint(
        photometry=tmp_path / "phot.parquet",
        out=tmp_path / "cat.parquet",
        **steps.frame_params("zeropoint", DEFAULTS),
    )
    cat, m = io.read_table(tmp_path / "cat.parquet")
    assert m["status"] == "ok" and m["zeropoint"]["zp"] == pytest.approx(25.0, abs=0.01)
    assert np.isnan(m["zeropoint"]["maglim"] if m["zeropoint"]["maglim"] is not None else np.nan)


def test_damaged_gzip_data_is_a_bad_frame_not_garbage(tmp_path):
    """One flipped byte in a .fits.gz: astropy hands back pixels (garbage) without a word;
    the CRC at the end of the stream says the copy is damaged, and the frame is flagged."""
    import gzip

    from fieldphot import stages

    night = synthetic.simulate_night(
        tmp_path / "n",
        synthetic.SimConfig(nx=128, ny=128, n_science=1, n_bias=0, n_dark=0, n_flat=0, seed=2),
    )
    raw = next(night.raw_dir.glob("*.fits"))
    packed = bytearray(gzip.compress(raw.read_bytes()))
    packed[len(packed) // 2] ^= 0xFF
    bad = night.raw_dir / (raw.name + ".gz")
    bad.write_bytes(bytes(packed))
    raw.unlink()
    m = stages.manifest([bad], tmp_path / "m.parquet", "", None, 0)
    row = m.iloc[0].to_dict()
    steps.run(
        "calibrate",
        {"raw": row["path"]},
        tmp_path / "c.fits",
        steps.frame_params("calibrate", DEFAULTS, row),
    )
    header = io.read_calibrated(tmp_path / "c.fits")[3]
    assert header["FP_STAT"] == "bad"
    assert "damaged gzip data" in header["FP_WHY"] and "CRC" in header["FP_WHY"]
