"""Camera raw files (issue 23): read through rawpy with the right colour pattern, black and
white levels, exposure, ISO and time; a damaged one is one line and the night goes on."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from fieldphot import bayer, camera_raw, headers, io, manifest, stages, steps, synthetic, validation
from fieldphot.runner import run_night

CHANNELS = ("R", "G1", "G2", "B")


def _mosaic(pattern: str, levels=None, shape=(64, 96)) -> np.ndarray:
    """A mosaic whose channels hold distinct levels (ADU above black)."""
    levels = levels or {"R": 100, "G1": 200, "G2": 300, "B": 400}
    out = np.zeros(shape)
    for channel, value in levels.items():
        bayer.plane(out, pattern, channel)[:] = value
    return out


@pytest.mark.parametrize("pattern", bayer.PATTERNS)
def test_a_dng_gives_its_pattern_black_and_white_levels(tmp_path, pattern):
    mosaic = _mosaic(pattern)
    path = synthetic.write_dng(
        tmp_path / "light_001.dng", mosaic + 1024, pattern, black=1024, white=15000,
        exptime=0.5, iso=3200, start="2024:03:15 03:04:05",
    )  # fmt: skip
    data, header = camera_raw.read(path)
    assert header["BAYERPAT"] == pattern and header["ROWORDER"] == "TOP-DOWN"
    assert np.array_equal(data, mosaic)  # black subtracted, nothing else touched
    assert header["SATURATE"] == 15000 - 1024
    assert (header["EXPTIME"], header["ISO"]) == (0.5, 3200)
    assert header["DATE-OBS"] == "2024-03-15T03:04:05"
    assert camera_raw.read_header(path) == header
    for value, channel in zip((100, 200, 300, 400), CHANNELS, strict=True):
        assert (bayer.plane(data, header["BAYERPAT"], channel) == value).all()


def test_raw_files_make_a_night_and_a_damaged_one_is_one_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        synthetic.write_dng(
            raw / f"light_{i}.dng", rng.poisson(_mosaic("RGGB") + 600), "RGGB", black=600,
            start=f"2024:03:15 03:0{i}:00",
        )  # fmt: skip
    good = (raw / "light_0.dng").read_bytes()
    (raw / "light_9.dng").write_bytes(good[: len(good) // 3])  # a copy cut short
    (raw / "IMG_0001.CR2").write_bytes(b"II*\0" + bytes(5000))  # not a raw file at all
    (raw / "notes.txt").write_text("not a frame")
    paths, problems = manifest.scan_raw(raw)
    assert not problems and [p.name for p in paths] == [
        "IMG_0001.CR2", "light_0.dng", "light_1.dng", "light_9.dng"
    ]  # fmt: skip
    m = stages.manifest(paths, tmp_path / "results" / "manifest.parquet")
    bad = m[m["status"] == "bad"].set_index("frame")["reason"]
    assert sorted(bad.index) == ["IMG_0001", "light_9"]
    for name, reason in bad.items():
        assert reason.startswith(str(raw / name)) and "camera raw" in reason, reason
        assert "\n" not in reason
    sci = manifest.science_frames(m)
    assert sorted(sci["frame"]) == sorted(f"light_{i}_{c}" for i in range(2) for c in CHANNELS)
    assert (sci["bayer"] == "RGGB").all() and (sci["exptime"] == 30.0).all()


def test_a_raw_light_is_calibrated_into_its_channel_planes(tmp_path):
    """No bias frames: a raw file's black level is its offset (no pedestal is guessed
    from the sky), and each plane holds its channel's light in electrons."""
    levels = {"R": 150, "G1": 400, "G2": 410, "B": 90}
    path = synthetic.write_dng(
        tmp_path / "light_1.dng", _mosaic("GBRG", levels, (128, 128)) + 256, "GBRG", black=256
    )
    m = manifest.build_manifest([(str(path), io.read_header(path))])
    config = {"raw_dir": str(tmp_path)}
    from fieldphot import config as cfgmod

    params = steps.frame_params("calibrate", cfgmod.with_defaults(config))
    params["cfg"]["cosmic_rays"] = {**params["cfg"]["cosmic_rays"], "enabled": False}
    for row in manifest.science_frames(m).to_dict("records"):
        out = tmp_path / f"{row['frame']}.fits"
        stages.calibrate(raw=str(path), out=out, row=row, **params)
        sci, err, mask, header = io.read_calibrated(out)
        assert sci.shape == (64, 64)
        assert np.allclose(sci, levels[row["channel"]] * row["gain"]), row["frame"]
        assert header["FP_CHAN"] == row["channel"] and header["FP_PED"] == 0.0


def test_each_iso_has_its_own_masters_and_its_gain_from_the_profile(tmp_path):
    """A DSLR's gain changes with its ISO: frames of one ISO share masters, and the gain
    comes from the profile's table (the files give none) or is measured per ISO."""
    frames = [("light_1.dng", 800), ("flat_1.dng", 800), ("flat_2.dng", 1600)]
    items = []
    for name, iso in frames:
        path = synthetic.write_dng(tmp_path / name, _mosaic("RGGB") + 600, iso=iso)
        items.append((str(path), io.read_header(path)))
    profile = headers.Profile(
        **{**headers.DEFAULT_PROFILE.__dict__, "gain_per_iso": {800.0: 0.45, 1600.0: 0.22}}
    )
    m = manifest.build_manifest(items, profile).set_index("frame")
    assert m.loc["flat_1", "setup"] != m.loc["flat_2", "setup"]
    assert m.loc["light_1_R", "flat_master"].endswith(f"flat_{m.loc['flat_1', 'setup']}.fits")
    assert (m.loc["light_1_R", "gain"], m.loc["flat_2", "gain"]) == (0.45, 0.22)
    assert "gain" not in m.loc["light_1_R", "guessed"]
    guessed = manifest.build_manifest(items).set_index("frame")
    assert "gain" in guessed.loc["light_1_R", "guessed"]  # to be measured from its flats


def test_a_night_that_gives_no_pointing_runs_without_a_catalog(tmp_path):
    """Raw files say nothing of where the camera points: no catalog can be asked for,
    and the night goes on without one (one line naming the cause), not stopped."""
    from fieldphot import config as cfgmod

    path = synthetic.write_dng(tmp_path / "light_1.dng", _mosaic("RGGB") + 600)
    results = tmp_path / "results"
    stages.manifest([path], results / "manifest.parquet")
    cfg = cfgmod.with_defaults({"raw_dir": str(tmp_path)})
    stages.reference_catalog(
        results / "manifest.parquet",
        results / "refcat.parquet",
        steps.reads("reference_catalog", cfg),
        steps.transport(cfg),
    )
    table, meta = io.read_table(results / "refcat.parquet")
    assert table.empty and "RA/Dec" in meta["reason"] and "reference_catalog.path" in meta["reason"]


def test_the_configs_pointing_gives_raw_frames_their_bjd(tmp_path):
    path = synthetic.write_dng(tmp_path / "light_1.dng", _mosaic("RGGB") + 600)
    items = [(str(path), io.read_header(path))]
    site = {"lat": 31.96, "lon": -111.6, "elev": 2096.0}
    m = manifest.build_manifest(items, observatory=site, pointing={"ra": 83.8, "dec": -5.4})
    sci = manifest.science_frames(m)
    assert (sci["ra"] == 83.8).all() and np.isfinite(sci["bjd_tdb"]).all()
    # mid-exposure (30 s) of 2024-03-15 03:00:00 UTC: light time to the barycentre (up to
    # 8.3 min) and TDB - UTC (69 s) apart
    jd_utc = 2460384.625 + 15 / 86400
    assert 0 < abs(sci["bjd_tdb"].iloc[0] - jd_utc) * 1440 < 9.6
    assert manifest.science_frames(manifest.build_manifest(items))["bjd_tdb"].isna().all()


def _as_dng(night: synthetic.Night, cfg: synthetic.SimConfig, folder: Path) -> None:
    """A simulated colour night's raw frames as a DSLR writes them: DNG files of the
    imaging pixels (no overscan), named by their type, with no gain, read noise, site or
    pointing."""
    folder.mkdir()
    names = {"bias": "bias", "dark": "dark", "flat": "flat", "science": "light"}
    for path in sorted(night.raw_dir.glob("*.fits")):
        amps, h = io.read_amplifiers(path)
        kind = headers.classify(h["IMAGETYP"], headers.DEFAULT_PROFILE.frame_types)
        synthetic.write_dng(
            folder / f"{names[kind]}_{path.stem}.dng",
            amps[0][0][:, cfg.prescan : cfg.prescan + cfg.nx],
            cfg.bayer,
            black=0,
            white=int(cfg.saturate_adu),
            exptime=h["EXPTIME"],
            start=h["DATE-OBS"][:19].replace("-", ":").replace("T", " "),
        )


def test_a_dslr_night_of_raw_files_is_measured_per_channel(tmp_path):
    """A colour night shot as DNG files: typed by name, the gain measured from its flats,
    the read noise from its bias frames, the site and pointing from the config; every
    channel plane solved and calibrated to the truth."""
    cfg = synthetic.SimConfig(
        nx=512, ny=512, n_science=3, n_bias=3, n_dark=3, n_flat=4, seed=8, bayer="BGGR",
        fwhm_min=5.0, fwhm_max=6.0,
    )  # fmt: skip
    night = synthetic.simulate_night(tmp_path / "sim", cfg)
    _as_dng(night, cfg, tmp_path / "dng")
    config = yaml.safe_load(night.config.read_text())
    config.update(
        raw_dir=str(tmp_path / "dng"),
        observatory={"lat": cfg.site_lat, "lon": cfg.site_lon, "elev": cfg.site_elev},
        pointing={"ra": cfg.ra, "dec": cfg.dec},
        solve={"pixel_scale": cfg.pixel_scale},
    )
    run_night(config, tmp_path / "results", processes=2)
    m, meta = io.read_table(tmp_path / "results" / "manifest.parquet")
    assert (m["status"] == "ok").all(), m.loc[m["status"] != "ok", "reason"].tolist()
    assert m["gain"].to_numpy() == pytest.approx(cfg.gain, rel=0.05)
    truth = validation.Truth(tmp_path / "sim")
    frames, _ = io.read_table(tmp_path / "results" / "lightcurves" / "frames.parquet")
    planes = frames[frames["filter"] != "G"]
    assert len(planes) == 4 * cfg.n_science and (planes["status"] == "ok").all()
    true_zp = truth.frames.loc[planes["frame"].str.removeprefix("light_"), "zp"].to_numpy()
    assert np.abs(planes["zp"].to_numpy() - true_zp).max() < 0.1
    true_bjd = truth.frames.loc[planes["frame"].str.removeprefix("light_"), "bjd_tdb"]
    assert np.abs(planes["bjd_tdb"].to_numpy() - true_bjd.to_numpy()).max() * 86400 < 0.01
