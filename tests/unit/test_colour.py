"""Colour cameras (issue 23): a Bayer frame calibrated on its mosaic, split into its four
channel planes without interpolation, each measured as a frame, the two greens combined;
against the simulator's truth per channel."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits
from conftest import simulated_night  # tests/ is on the path (its conftest)

from fieldphot import bayer, headers, io, manifest, nightplan, synthetic, validation
from fieldphot.cli import parser
from fieldphot.runner import run_night

COLOUR_NIGHT = synthetic.COLOUR_NIGHT
CHANNELS = ("R", "G1", "G2", "B")


def test_the_pattern_is_read_in_the_headers_row_order_and_offsets():
    assert bayer.stored_pattern("RGGB") == "RGGB"
    assert bayer.stored_pattern("rggb", xoffset=1) == "GRBG"
    assert bayer.stored_pattern("RGGB", yoffset=1) == "GBRG"
    # BOTTOM-UP counts rows from the last one: with an even count the tile flips
    assert bayer.stored_pattern("RGGB", row_order="BOTTOM-UP", ny=4000) == "GBRG"
    assert bayer.stored_pattern("RGGB", row_order="BOTTOM-UP", ny=4001) == "RGGB"
    assert bayer.stored_pattern("XTRANS") is None
    h = fits.Header({"BAYERPAT": "BGGR", "XBAYROFF": 1, "NAXIS2": 100})
    assert headers.normalize(h)[0]["bayer"] == "GBRG"
    assert headers.normalize(fits.Header())[0]["bayer"] == ""
    override = headers.Profile(**{**headers.DEFAULT_PROFILE.__dict__, "bayer": "none"})
    assert headers.normalize(h, override)[0]["bayer"] == ""


def test_a_plane_is_every_other_pixel_of_its_colour_never_interpolated():
    mosaic = np.tile(np.array([[1.0, 2.0], [3.0, 4.0]]), (3, 5))  # R=1 G1=2 G2=3 B=4
    for value, channel in enumerate(CHANNELS, start=1):
        p = bayer.plane(mosaic, "RGGB", channel)
        assert p.shape == (3, 5) and (p == value).all()
    # a trimmed array that starts one column in sees the pattern shifted
    assert (bayer.plane(mosaic[:, 1:], bayer.shifted("RGGB", 0, 1), "R") == 1).all()


def test_a_colour_flat_is_normalised_per_channel():
    rng = np.random.default_rng(1)
    flat = np.tile(np.array([[0.8, 1.0], [1.0, 0.5]]), (50, 50)) * rng.normal(1, 0.01, (100, 100))
    norm = bayer.normalize_channels(flat)
    for channel in CHANNELS:
        assert np.median(bayer.plane(norm, "RGGB", channel)) == pytest.approx(1.0, abs=1e-12)


def test_a_colour_frame_becomes_four_channel_frames(tmp_path):
    def header(kind, filt="L"):
        return fits.Header(
            {"IMAGETYP": kind, "EXPTIME": 10.0, "FILTER": filt, "BAYERPAT": "RGGB",
             "DATE-OBS": "2024-03-15T03:00:00", "NAXIS1": 100, "NAXIS2": 100,
             "XPIXSZ": 3.76, "FOCALLEN": 400.0}
        )  # fmt: skip

    m = manifest.build_manifest(
        [("raw/light1.fits", header("Light")), ("raw/flat1.fits", header("Flat"))]
    )
    sci = manifest.science_frames(m)
    assert sci["frame"].tolist() == [f"light1_{c}" for c in CHANNELS]
    assert sci["filter"].tolist() == list(CHANNELS)
    assert (sci["exposure"] == "light1").all() and (sci["path"] == "raw/light1.fits").all()
    assert sci["pixel_scale"].iloc[0] == pytest.approx(2 * 206.265 * 3.76 / 400.0, rel=1e-4)
    flat = m[m["kind"] == "flat"]
    assert len(flat) == 1 and flat["channel"].iloc[0] == ""  # calibrated on the mosaic
    assert (
        sci["flat_master"]
        == manifest.master_path(flat["night"].iloc[0], "flat", flat["setup"].iloc[0])
    ).all()
    # one exposure left out by its file name leaves out its four channels
    assert manifest.science_frames(m, ["raw/light1.fits"]).empty
    # `fieldphot init` counts the exposure once, and its flat as its own
    listed = nightplan.inventory(m).set_index("kind")
    assert (listed.loc["science", "filter"], listed.loc["science", "frames"]) == ("colour RGGB", 1)
    assert not any("flats" in p for p in nightplan.problems(m))
    alone = manifest.build_manifest([("raw/light1.fits", header("Light"))])
    assert any("no flats for the colour RGGB frames" in p for p in nightplan.problems(alone))


def test_simulate_takes_a_bayer_pattern():
    assert parser().parse_args(["simulate", "out", "--bayer", "RGGB"]).bayer == "RGGB"


@pytest.fixture(scope="module")
def colour_night(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colour_night")
    simulated_night(root, COLOUR_NIGHT)
    return root


def _frames(root: Path) -> pd.DataFrame:
    return io.read_table(root / "results" / "lightcurves" / "frames.parquet")[0]


def test_every_channel_plane_is_solved_to_its_true_positions(colour_night):
    truth = validation.Truth(colour_night)
    rms = validation.astrometry_rms(colour_night / "results", truth)
    assert len(rms) == 4 * COLOUR_NIGHT.n_science
    assert rms.max() < 0.1, rms.sort_values().tail()


def test_each_channels_zeropoint_is_within_10_mmag_of_the_truth(colour_night):
    """Each channel is calibrated against V with its own colour term, fitted per frame:
    the magnitudes of the frame's calibration stars (at their own colours) agree with
    the truth within 10 mmag on every frame, and the colour terms with the channels'."""
    truth = validation.Truth(colour_night)
    results = colour_night / "results"
    for path in sorted(results.glob("catalogs/*/*.parquet")):
        cat, meta = io.read_table(path)
        frame = meta["frame"]["frame"]
        assert meta["status"] == "ok", (frame, meta.get("reason"))
        used = cat[cat["used_in_zp"]]
        offset = np.median(used["mag"] - truth.frame(frame).loc[used["id"], "mag_true"].to_numpy())
        assert abs(offset) < 0.010, (frame, offset)
        term = synthetic.CHANNEL_MODEL[meta["frame"]["channel"][0]][1]
        assert meta["zeropoint"]["color_term"] == pytest.approx(term, abs=0.05), frame


@pytest.mark.parametrize("channel", [*CHANNELS, "G"])
def test_constant_stars_scatter_as_the_noise_model_in_every_channel(colour_night, channel):
    s = validation.constant_star_noise(
        colour_night / "results", validation.Truth(colour_night), filter_name=channel
    )
    assert len(s) >= 10
    assert np.median(s["rms"] / s["expected"]) == pytest.approx(1.0, abs=0.1)


def test_the_combined_green_is_sqrt2_better_than_each_green(colour_night):
    results, truth = colour_night / "results", validation.Truth(colour_night)
    noise = {
        c: validation.constant_star_noise(results, truth, filter_name=c).set_index("id")["rms"]
        for c in ("G1", "G2", "G")
    }
    for c in ("G1", "G2"):
        both = noise[c].index.intersection(noise["G"].index)
        assert len(both) >= 10
        assert np.median(noise[c][both] / noise["G"][both]) == pytest.approx(np.sqrt(2), abs=0.15)


def test_the_transit_in_the_combined_green(colour_night):
    p = validation.Truth(colour_night).params["transit"]
    t, f, e = validation.flux_curve(colour_night / "results", p["id"], filter_name="G")
    assert len(t) >= 0.8 * COLOUR_NIGHT.n_science
    guess = p["t0_bjd"] + 10 / 1440  # start ten minutes off
    t0, depth, depth_err = validation.transit_fit(t, f, e, guess, p["duration_d"], p["ingress_d"])
    assert abs(depth / p["depth"] - 1) < 0.05 and abs(depth - p["depth"]) < 3 * depth_err
    assert abs(t0 - p["t0_bjd"]) * 1440 < 2.0


def test_the_combined_green_is_a_frame_of_the_night(colour_night):
    frames = _frames(colour_night)
    counts = frames["filter"].value_counts()
    assert all(counts[c] == COLOUR_NIGHT.n_science for c in (*CHANNELS, "G"))
    g = frames[frames["filter"] == "G"].set_index("exposure")
    g1 = frames[frames["filter"] == "G1"].set_index("exposure")
    # the sum's zeropoint: both greens' light, 2.5 log10(2) brighter than one
    assert np.allclose(g["zp"] - g1.loc[g.index, "zp"], 2.5 * np.log10(2), atol=0.03)


@pytest.mark.parametrize("stored", ["GBRG", "BGGR"])
def test_a_bottom_up_frame_keeps_its_channels_apart(tmp_path, stored):
    """A capture program that writes BOTTOM-UP gives the pattern in the other row order:
    read wrongly, R and B (or a green) would swap, and their zeropoints with them."""
    cfg = synthetic.SimConfig(
        nx=384, ny=384, n_science=2, n_bias=2, n_dark=2, n_flat=3, seed=8, bayer=stored,
        row_order="BOTTOM-UP", fwhm_min=5.0, fwhm_max=6.0,
    )  # fmt: skip
    night = synthetic.simulate_night(tmp_path, cfg)
    assert fits.getheader(next(night.raw_dir.glob("*.fits")))["BAYERPAT"] != stored
    run_night(yaml.safe_load(night.config.read_text()), tmp_path / "results", processes=1)
    m, _ = io.read_table(tmp_path / "results" / "manifest.parquet")
    assert (m.loc[m["kind"] == "science", "bayer"] == stored).all()
    offsets = validation.zeropoint_offsets(tmp_path / "results", validation.Truth(tmp_path))
    assert len(offsets) == 8 and offsets.abs().max() < 0.1, offsets
