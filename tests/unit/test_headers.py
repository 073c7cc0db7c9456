"""Header dialects, frame classification, times and the manifest."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from fieldphot import headers, manifest, timeutil


@pytest.mark.parametrize(
    "cards, kind",
    [
        ({"IMAGETYP": "Bias Frame"}, "bias"),
        ({"IMAGETYP": "zero"}, "bias"),
        ({"OBSTYPE": "DARK"}, "dark"),
        ({"IMAGETYP": "SKYFLAT"}, "flat"),
        ({"FRAMETYP": "Flat Field"}, "flat"),
        ({"IMAGETYP": "OBJECT"}, "science"),
        ({"IMAGETYP": "Light Frame"}, "science"),
    ],
)
def test_frame_type_dialects(cards, kind):
    meta, _ = headers.normalize(fits.Header(cards))
    assert meta["frame_type"] == kind


@pytest.mark.parametrize("key", ["EXPTIME", "EXPOSURE", "ITIME"])
def test_exposure_dialects(key):
    meta, _ = headers.normalize(fits.Header({key: "12.5"}))
    assert meta["exptime"] == 12.5


@pytest.mark.parametrize(
    "cards, iso",
    [
        ({"DATE-OBS": "2019-03-26T02:27:31.13"}, "2019-03-26T02:27:31.130"),
        ({"DATE-OBS": "2019-03-26", "UTCSTART": "02:27:31.13"}, "2019-03-26T02:27:31.130"),
        ({"DATE-OBS": "2019-03-26", "TIME-OBS": "02:27:31.13"}, "2019-03-26T02:27:31.130"),
        ({"MJD-OBS": 58568.0}, "2019-03-26T00:00:00.000"),
    ],
)
def test_start_time_dialects(cards, iso):
    meta, _ = headers.normalize(fits.Header(cards))
    assert meta["date_obs"] == iso


def test_missing_values_are_named():
    meta, missing = headers.normalize(fits.Header({"IMAGETYP": "LIGHT"}))
    text = "; ".join(missing)
    assert "exposure time" in text and "start time" in text and "filter" in text


def test_sexagesimal_and_quoted_numbers():
    meta, _ = headers.normalize(
        fits.Header({"RA": "08:18:29.9", "DEC": "+25:19:59", "GAIN": "4.95"})
    )
    assert meta["ra"] == pytest.approx(124.624583, abs=1e-5)
    assert meta["dec"] == pytest.approx(25.333056, abs=1e-5)
    assert meta["gain"] == 4.95


def test_manifest_plans_calibration_and_flags_bad_files():
    def h(kind, t, naxis=(100, 80), **kw):
        return fits.Header(
            {
                "IMAGETYP": kind,
                "EXPTIME": t,
                "DATE-OBS": "2024-03-15T03:00:00",
                "SITELONG": -111.6,
                "NAXIS1": naxis[0],
                "NAXIS2": naxis[1],
                **kw,
            }
        )

    items = [
        ("b1.fits", h("BIAS", 0.0)),
        ("d1.fits", h("DARK", 60.0)),
        ("f1.fits", h("FLAT", 2.0, FILTER="V")),
        ("s1.fits", h("LIGHT", 60.0, FILTER="V")),
        ("s2.fits", h("LIGHT", 60.0, FILTER="R")),
        ("x.fits", OSError("x.fits: truncated")),
    ]
    m = manifest.build_manifest(items).set_index("frame")
    assert m.loc["s1", "flat_master"] == "masters/20240314/flat_V_1x1_100x80.fits"
    assert m.loc["s1", "bias_master"] == "masters/20240314/bias_1x1_100x80.fits"
    assert m.loc["s2", "flat_master"] == ""  # no R flats: calibrated without, flagged later
    assert m.loc["x", "status"] == "bad" and "truncated" in m.loc["x", "reason"]


def test_bjd_and_night():
    mjd = timeutil.mid_exposure_mjd(["2024-03-15T03:00:00"], [60.0])
    assert mjd[0] == pytest.approx(60384.125 + 30 / 86400, abs=1e-9)
    bjd = timeutil.bjd_tdb(mjd, 150.0, 20.0, 31.96, -111.6, 2100.0)
    # Barycentric correction for RA 150 in mid-March: a few minutes; TDB-UTC = 69.184 s.
    corr = (bjd[0] - 2400000.5 - mjd[0]) * 86400 - 69.184
    assert 0 < abs(corr) < 500
    assert timeutil.night_label(mjd, [-111.6]) == ["20240314"]
    assert np.isfinite(timeutil.airmass(mjd, 150.0, 20.0, 31.96, -111.6, 2100.0)[0])


@pytest.mark.parametrize(
    "cards, key, value",
    [
        ({"FILTER1": "r'"}, "filter", "r'"),
        ({"FILTNAME": "VR"}, "filter", "VR"),
        ({"EGAIN": 1.3}, "gain", 1.3),
        ({"AGAIN_01": "4.95"}, "gain", 4.95),
        ({"DATAMAX": 50000}, "saturate", 50000.0),
        ({"SATURATE": "60000"}, "saturate", 60000.0),
        ({"CCDSUM": "2 2"}, "binning", "2x2"),
        ({"XBINNING": 3, "YBINNING": 3}, "binning", "3x3"),
        ({"DATE-OBS": "2024-01-02", "UT-OBS": "03:04:05"}, "date_obs", "2024-01-02T03:04:05.000"),
        ({"OBJCTRA": "10 01 00", "OBJCTDEC": "+20 30 00"}, "ra", 150.25),
        ({"PIXSCALE": "0.98"}, "pixel_scale", 0.98),
        ({"SECPIX": 1.5}, "pixel_scale", 1.5),
    ],
)
def test_more_dialects(cards, key, value):
    meta, _ = headers.normalize(fits.Header(cards))
    assert meta[key] == value


def test_local_time_header_with_profile_offset():
    prof = headers.Profile(**{**headers.DEFAULT_PROFILE.__dict__, "utc_offset_hours": -7.0})
    meta, _ = headers.normalize(fits.Header({"DATE-OBS": "2024-01-02T20:00:00"}), prof)
    assert meta["date_obs"] == "2024-01-03T03:00:00.000"  # 20:00 at UTC-7 is 03:00 UTC


def test_guessed_values_are_reported():
    meta, _ = headers.normalize(fits.Header({"IMAGETYP": "BIAS", "GAIN": 2.0}))
    assert meta["gain"] == 2.0 and meta["guessed"] == "read_noise,saturate"


def test_unreadable_values_give_one_line_naming_file_and_keyword():
    m = manifest.build_manifest(
        [
            (
                "night/f1.fits",
                fits.Header(
                    {
                        "IMAGETYP": "LIGHT",
                        "EXPTIME": "n/a",
                        "DATE-OBS": "2024-01-02T03:04:05",
                        "FILTER": "V",
                    }
                ),
            )
        ]
    )
    reason = m.loc[0, "reason"]
    assert m.loc[0, "status"] == "bad" and "\n" not in reason
    assert reason.startswith("night/f1.fits:") and "EXPTIME" in reason


def test_init_reports_what_is_missing(tmp_path):
    from fieldphot import cli, synthetic

    night = synthetic.simulate_night(
        tmp_path / "n",
        synthetic.SimConfig(nx=64, ny=64, n_science=2, n_bias=2, n_dark=0, n_flat=0, seed=3),
    )
    table, problems = cli.init_night(night.raw_dir, tmp_path / "w", str(night.refcat))
    assert "science" in table and "bias" in table
    text = "\n".join(problems)
    assert "no flats in V (1x1)" in text and "no darks (1x1)" in text
    assert (tmp_path / "w" / "config.yaml").exists()
    assert (tmp_path / "w" / "results" / "manifest.parquet").exists()
    assert not (tmp_path / "w" / "instrument.yaml").exists()  # nothing was guessed
    # The catalog's own column names (Vmag, e_Vmag) are found for the night's V frames.
    import yaml

    from fieldphot import io, refcat

    columns = yaml.safe_load((tmp_path / "w" / "config.yaml").read_text())["reference_catalog"]
    assert columns["columns"]["mag"] == "Vmag" and columns["columns"]["mag_err"] == "e_Vmag"
    stars = refcat.standardize(io.read_any_table(night.refcat), columns["columns"])
    assert len(stars) > 5 and stars["mag_err"].notna().all()


def test_profile_is_validated_with_a_clear_error(tmp_path):
    from fieldphot import stages

    bad = tmp_path / "cam.yaml"
    bad.write_text("name: cam\nkeywords: {exptime: [EXPTIME]}\nframe_types: {bias: [bias]}\n")
    with pytest.raises(ValueError, match=r"cam.yaml: invalid instrument profile"):
        stages.load_profile(bad)


def test_fpack_compressed_frames_are_read(tmp_path):
    from fieldphot import io

    data = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64)
    hdr = fits.Header(
        {"IMAGETYP": "LIGHT", "EXPTIME": 5.0, "DATE-OBS": "2024-01-02T03:04:05", "FILTER": "V"}
    )
    path = tmp_path / "f.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, hdr)]).writeto(path)
    meta, missing = headers.normalize(io.read_header(path))
    assert not missing and meta["frame_type"] == "science"
    ((img, _),) = io.read_amplifiers(path)[0]
    assert np.array_equal(img, data) and manifest.frame_name(str(path)) == "f"


def test_masters_never_mix_readout_shapes():
    def h(kind, naxis):
        return fits.Header(
            {
                "IMAGETYP": kind,
                "EXPTIME": 0.0 if kind == "BIAS" else 10.0,
                "DATE-OBS": "2024-03-15T03:00:00",
                "FILTER": "V",
                "NAXIS1": naxis[0],
                "NAXIS2": naxis[1],
            }
        )

    items = [
        ("b_full.fits", h("BIAS", (100, 80))),
        ("b_sub.fits", h("BIAS", (50, 40))),
        ("s_sub.fits", h("LIGHT", (50, 40))),
    ]
    m = manifest.build_manifest(items).set_index("frame")
    assert len(manifest.masters_table(m.reset_index())) == 2
    assert m.loc["s_sub", "bias_master"].endswith("bias_1x1_50x40.fits")


@pytest.mark.parametrize(
    "cards, iso",
    [  # UTC offsets (the 6-inch transit night's camera), a time card holding a date too
        ({"DATE-OBS": "2017-12-19T18:33:43.317-0700"}, "2017-12-20T01:33:43.317"),
        ({"DATE-OBS": "2017-12-20T01:33:43.317Z"}, "2017-12-20T01:33:43.317"),
        (
            {"DATE-OBS": "2017-12-20", "UT-OBS": "2017-12-20T01:33:43.317-0000"},
            "2017-12-20T01:33:43.317",
        ),
        ({"DATE-OBS": "2017-12-20T03:33:43.3+02:00"}, "2017-12-20T01:33:43.300"),
        # an unreadable DATE-OBS: the 3-decimal MJD-OBS is the fallback
        ({"DATE-OBS": "20/12/2017", "MJD-OBS": 58107.065}, "2017-12-20T01:33:36.000"),
        # a local clock without a zone, found against MJD-OBS, keeps its millisecond precision
        ({"DATE-OBS": "2017-12-19T18:33:43.317", "MJD-OBS": 58107.065}, "2017-12-20T01:33:43.317"),
    ],
)
def test_start_times_with_offsets_and_cross_checked(cards, iso):
    meta, missing = headers.normalize(fits.Header(cards))
    assert meta["date_obs"] == iso and not [m for m in missing if "start time" in m]


def test_start_sources_that_disagree_are_noted():
    meta, _ = headers.normalize(
        fits.Header({"DATE-OBS": "2017-12-20T01:53:43.317Z", "MJD-OBS": 58107.065})
    )
    assert meta["date_obs"] == "2017-12-20T01:53:43.317"  # the more precise, both explicit
    assert "start times disagree" in meta["notes"] and "MJD-OBS" in meta["notes"]


def _untyped(i, **extra):
    return fits.Header(
        {"EXPTIME": 60.0, "FILTER": "V", "DATE-OBS": f"2024-03-15T0{i}:00:00", **extra}
    )


def test_frames_without_a_type_keyword_and_no_calibrations_are_science():
    items = [(f"raw/wasp12_{i:04d}.fits", _untyped(i)) for i in range(3)]
    m = manifest.build_manifest(items)
    assert (m["status"] == "ok").all() and (m["kind"] == "science").all()
    assert len(m.attrs["notes"]) == 1 and "taken as science frames" in m.attrs["notes"][0]


def test_frame_type_from_the_file_name_when_the_header_has_none():
    items = [
        ("raw/bias_001.fits", _untyped(1, EXPTIME=0.0)),
        ("raw/lux-180.000secs.Dark.Open.00000041.fits", _untyped(2)),
        ("raw/lux-180.000secs.Light.Open.00000015.fits", _untyped(3)),
        ("raw/mystery_0001.fits", _untyped(4)),  # calibrations exist: not guessed
    ]
    m = manifest.build_manifest(items).set_index("frame")
    assert m["kind"].iloc[:3].tolist() == ["bias", "dark", "science"]
    assert m.loc["mystery_0001", "status"] == "bad"
    assert "frame type" in m.loc["mystery_0001", "reason"]


def test_west_positive_site_longitude_is_found_from_the_header_lst():
    # MIT Wallace Observatory (71.48 W) writes SITELONG = '+71 29 06.00' and LST.
    h = fits.Header(
        {
            "IMAGETYP": "Light Frame",
            "EXPTIME": 180.0,
            "FILTER": "Open",
            "DATE-OBS": "2018-10-13T02:03:10.984",
            "SITELAT": "+42 36 36.00",
            "SITELONG": "+71 29 06.00",
            "LST": "+22 43 34.72",
            "AIRMASS": 2.8289,
            "OBJCTRA": "04 12 12.262",
            "OBJCTDEC": "+22 53 01.76",
        }
    )
    m = manifest.build_manifest([("raw/a.fits", h)])
    assert m.loc[0, "site_lon"] == pytest.approx(-71.485, abs=1e-3)
    assert m.loc[0, "airmass"] == pytest.approx(2.83, rel=0.03)  # 1.69 read east
    assert m.loc[0, "night"] == "20181012"
    assert any("west-positive" in n for n in m.attrs["notes"])
    h.remove("LST")  # the header airmass alone tells too
    m = manifest.build_manifest([("raw/a.fits", h)])
    assert m.loc[0, "site_lon"] == pytest.approx(-71.485, abs=1e-3)
    east = manifest.build_manifest([("raw/a.fits", h)], observatory={"lon": 71.485})
    assert east.loc[0, "site_lon"] == 71.485  # the config's observatory is never changed


def test_init_refuses_a_folder_without_usable_science_frames(tmp_path):
    from fieldphot import cli

    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(2):
        fits.PrimaryHDU(np.zeros((8, 8), np.int16), fits.Header({"IMAGETYP": "LIGHT"})).writeto(
            raw / f"f{i}.fits"
        )
    assert cli.main(["init", str(raw), "--out", str(tmp_path / "w")]) == 1
    assert not (tmp_path / "w" / "config.yaml").exists()


def test_init_writes_absolute_paths(tmp_path, monkeypatch):
    import shutil

    import yaml

    from fieldphot import cli, synthetic

    night = synthetic.simulate_night(
        tmp_path / "n", synthetic.SimConfig(nx=64, ny=64, n_science=2, n_bias=2, seed=3)
    )
    shutil.copy(night.refcat, tmp_path / "field.parquet")
    monkeypatch.chdir(tmp_path)  # relative paths given: the config must not keep them
    cli.init_night("n/raw", "w", "field.parquet")
    cfg = yaml.safe_load((tmp_path / "w" / "config.yaml").read_text())
    assert cfg["raw_dir"] == str(night.raw_dir.resolve())
    assert cfg["reference_catalog"]["path"] == str(tmp_path / "field.parquet")
    assert not cfg["instrument"] or Path(cfg["instrument"]).is_absolute()
    # The manifest init wrote is the workflow's, read from its own working folder: found
    # by `fieldphot run w/config.yaml --workdir w` (tools/check-wheel.sh runs exactly that).
    m = pd.read_parquet(tmp_path / "w" / "results" / "manifest.parquet")
    assert all(Path(p).is_absolute() and Path(p).exists() for p in m["path"])


@pytest.mark.parametrize(
    "edit, status, text",
    [
        ({"EXPTIME": 1e30}, "bad", "not a real exposure"),
        ({"DATE-OBS": "3000-03-15T03:00:00"}, "bad", "is not a real date"),
        ({"DATE-OBS": "1800-03-15T03:00:00"}, "bad", "not a real date"),
        ({"DEC": 999.0}, "ok", "DEC 999 is outside -90..90: not used"),
        ({"RA": 999.0}, "ok", "RA 999 is outside 0..360: not used"),
        ({"GAIN": 0.0}, "ok", "GAIN = 0.0 is no gain"),
    ],
)
def test_one_absurd_header_value_spoils_one_frame_at_most(edit, status, text):
    base = {
        "IMAGETYP": "LIGHT",
        "EXPTIME": 60.0,
        "FILTER": "V",
        "RA": 150.0,
        "DEC": 20.0,
        "SITELAT": 31.96,
        "SITELONG": -111.6,
        "GAIN": 1.8,
    }
    items = [
        (f"raw/f{i}.fits", fits.Header({**base, "DATE-OBS": f"2024-03-15T0{i}:00:00"}))
        for i in range(3)
    ]
    items.append(("raw/odd.fits", fits.Header({**base, "DATE-OBS": "2024-03-15T05:00:00", **edit})))
    m = manifest.build_manifest(items).set_index("frame")
    assert (m.drop(index="odd")["status"] == "ok").all()  # the others are untouched
    assert m.drop(index="odd")["bjd_tdb"].notna().all()
    row = m.loc["odd"]
    assert row["status"] == status
    assert text in (row["reason"] if status == "bad" else row["notes"])
    if "GAIN" in edit:
        assert "gain" in row["guessed"]  # measured from the frames, not silently 1.0


def test_frames_without_a_site_say_how_their_times_are_made():
    """No site in the headers: the night runs, and one note says what the times are and
    which config key gives the site."""
    items = [
        (f"s{i}.fits", _untyped(i, IMAGETYP="LIGHT", RA="10:00:00", DEC="+20:00:00"))
        for i in range(3)
    ]
    m = manifest.build_manifest(items)
    assert (m["status"] == "ok").all() and m["bjd_tdb"].notna().all()
    (note,) = [n for n in m.attrs["notes"] if "site location" in n]
    assert note.startswith("3 science frames give no site location") and "observatory:" in note
    with_site = manifest.build_manifest(items, observatory={"lat": 31.9, "lon": -111.6})
    assert not any("site location" in n for n in with_site.attrs["notes"])
