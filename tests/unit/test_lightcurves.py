"""Light curves against the simulator's truth: noise, errors, transit, variable, time."""

import numpy as np
import pytest

from fieldphot import io, validation


@pytest.fixture(scope="module")
def noise(processed):
    s = validation.constant_star_noise(processed.results, processed.truth)
    assert len(s) >= 30
    return s


def test_scatter_matches_the_ccd_equation(noise):
    ratio = np.median(noise["rms"] / noise["predicted"])
    assert ratio == pytest.approx(1.0, abs=0.2)


def test_reported_errors_are_honest(noise):
    ratio = np.median(noise["expected"] / noise["rms"])  # reported error / actual scatter
    assert 0.8 <= ratio <= 1.25


def test_transit_depth_recovered(processed):
    p = processed.params["transit"]
    t, f, e = validation.flux_curve(processed.results, p["id"])
    in_transit = np.abs(t - p["t0_bjd"]) < p["duration_d"] / 2 - p["ingress_d"]
    assert in_transit.sum() >= 5 and (~in_transit).sum() >= 10
    depth = validation.transit_depth(t, f, e, p["t0_bjd"], p["duration_d"], p["ingress_d"])
    assert depth == pytest.approx(p["depth"], rel=0.1)


def test_variable_amplitude_recovered(processed):
    p = processed.params["variable"]
    t, f, e = validation.flux_curve(processed.results, p["id"])
    amp = validation.sine_amplitude(t, f, e, p["t0_bjd"], p["period_d"])
    assert amp == pytest.approx(p["amplitude"], rel=0.1)


def test_every_point_carries_bjd_tdb_and_utc(processed):
    lc = processed.catalogs()
    per_frame = lc.groupby("frame")[["bjd_tdb", "mjd_utc_mid"]].first()
    truth = processed.truth_frames.loc[per_frame.index]
    # Same frame-centre BJD as the simulator's (computed independently from its own clock).
    assert np.max(np.abs(per_frame["bjd_tdb"] - truth["bjd_tdb"])) * 86400 < 0.01
    assert np.max(np.abs(per_frame["mjd_utc_mid"] - truth["mjd_utc_mid"])) * 86400 < 0.01


def test_extinction_is_fitted_from_the_nights_zeropoints(processed):
    _, meta = io.read_table(processed.results / "lightcurves" / "frames.parquet")
    (fit,) = meta["extinction"]
    assert fit["n"] == len(processed.frames)
    assert fit["k"] == pytest.approx(
        processed.params["sim"]["extinction"], abs=max(3 * fit["k_err"], 0.01)
    )
    assert fit["k_err"] < 0.05
