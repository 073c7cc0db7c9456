"""The real Lowell 42-inch night (../shared/data/lowell42-vr): headers and calibration."""

import numpy as np
import pytest

from fieldphot import io, manifest, runner, solve, stages


@pytest.fixture(scope="module")
def lowell(lowell_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lowell")
    m = stages.manifest(runner.raw_files(lowell_dir), out / "manifest.parquet")
    return m, out


def test_frames_classified_from_headers_alone(lowell):
    m, _ = lowell
    assert (m["status"] == "ok").all(), m.loc[m["status"] != "ok", "reason"].tolist()
    counts = m["kind"].value_counts().to_dict()
    assert counts == {"science": 12, "bias": 8, "flat": 7}
    assert set(m["filter"]) == {"VR"}  # FILTER is missing on bias and flats: FILTNAME holds it
    assert set(m["gain"]) == {4.95} and set(m["read_noise"]) == {9.3}
    assert set(m["binning"]) == {"3x3"} and set(m["night"]) == {"20190325"}
    sci = m[m["kind"] == "science"]
    # DATE-OBS holds the date only; the start time is read from UTCSTART.
    assert sci["date_obs"].str.startswith("2019-03-26T0").all()
    assert sci["airmass"].between(1.0, 2.0).all() and sci["bjd_tdb"].notna().all()
    assert (sci["flat_master"] == "masters/20190325/flat_VR_3x3_1432x1370.fits").all()
    assert sci["dark_master"].str.endswith("skydark_3x3_1432x1370.fits").all()  # no darks


def test_quoted_string_wcs_is_read_as_numbers(lowell_dir):
    header = io.read_header(sorted(lowell_dir.glob("*.0126.fits.gz"))[0])
    w = solve.header_wcs(header)
    assert w is not None
    ra, dec = w.wcs.crval
    assert ra == pytest.approx(124.6185920672) and dec == pytest.approx(25.33, abs=0.05)
    bias_header = io.read_header(sorted(lowell_dir.glob("*.0001.fits.gz"))[0])
    assert solve.header_wcs(bias_header) is None  # 'Linear Unbinned ADC Pixels'


def test_calibration_removes_overscan_and_flattens_the_sky(lowell):
    m, out = lowell
    cfg = {"overscan": {"mode": "poly", "order": 3}, "cosmic_rays": {"enabled": False}}
    for _, row in manifest.masters_table(m).iterrows():  # bias, flat, then the skydark
        rows = m[m["path"].isin(row["inputs"])].to_dict("records")
        paths = [
            str(out / row[k]) if row[k] else ""
            for k in ("bias_master", "dark_master", "flat_master")
        ]
        stages.master(row["kind"], rows, paths[0], paths[1], out / row["path"], cfg, paths[2])
    spreads = []
    for sci_row in m[m["kind"] == "science"].to_dict("records"):
        assert "skydark_3x3" in sci_row["dark_master"]  # no darks: from the science frames
        out_path = out / f"{sci_row['frame']}.fits"
        stages.calibrate(
            sci_row["path"],
            sci_row,
            str(out / sci_row["bias_master"]),
            str(out / sci_row["dark_master"]),
            str(out / sci_row["flat_master"]),
            out_path,
            cfg,
        )
        sci, err, mask, header = io.read_calibrated(out_path)
        assert sci.shape == (1370, 1365)  # TRIMSEC [18:1382,1:1370]: prescan, overscan gone
        assert header["FP_RAWGN"] == 4.95
        # Sky flat across the frame: medians of 8 x 8 blocks (stars are a minority).
        blocks = np.array(
            [
                np.median(b)
                for r in np.array_split(sci[10:-10, 10:-10], 8)
                for b in np.array_split(r, 8, axis=1)
            ]
        )
        spreads.append((np.percentile(blocks, 90) - np.percentile(blocks, 10)) / np.median(blocks))
    # Without the skydark, these 300 s frames keep a fixed +200 e- glow toward the amplifier
    # edge: 0.5 % of the twilight sky of the first frame, 3.8 % of the dark sky of the last.
    assert len(spreads) == 12 and max(spreads) < 0.01, spreads
    w = solve.header_wcs(header)  # the WCS moved with the trim
    raw_w = solve.header_wcs(io.read_header(sci_row["path"]))
    assert np.allclose(w.wcs_pix2world([[100, 100]], 0), raw_w.wcs_pix2world([[117, 100]], 0))


def test_init_on_the_real_night(lowell_dir, tmp_path):
    table, problems = stages.init_night(lowell_dir, tmp_path)
    assert "no darks (3x3)" in "\n".join(problems)
    assert any("saturate" in p for p in problems)  # no SATURATE card: guessed, and said so
    profile = (tmp_path / "instrument.yaml").read_text()
    assert "saturate" in profile and "guesses" in profile
