"""Light curves against the simulator's truth: noise, errors, transit, variable, time."""

import numpy as np
import pytest

from fieldphot.lightcurves import summarize
from fieldphot.synthetic import transit_model


def _constant_bright(processed):
    lc = processed.catalogs()
    stars = processed.night.stars.set_index("id")
    ever_sat = processed.truth_fluxes.groupby("id")["saturated"].any()
    summary = summarize(lc)
    n = len(processed.frames)
    keep = (
        (summary["id"].map(stars["kind"]) == "constant")
        & ~summary["id"].map(ever_sat).astype(bool)
        & (summary["n_points"] >= 0.8 * n)
    )
    s = summary[keep]
    snr = lc.groupby("id")["snr"].median()
    return lc, s[s["id"].map(snr) > 50]


def test_scatter_matches_the_ccd_equation(processed):
    lc, s = _constant_bright(processed)
    assert len(s) >= 30
    predicted = lc.groupby("id")["mag_inst_err"].median()  # CCD-equation error per point
    ratio = s["rms"].to_numpy() / s["id"].map(predicted).to_numpy()
    assert np.median(ratio) == pytest.approx(1.0, abs=0.2), np.median(ratio)


def test_reported_errors_are_honest(processed):
    lc, s = _constant_bright(processed)
    ratio = s["expected"].to_numpy() / s["rms"].to_numpy()  # reported error / actual scatter
    assert 0.8 <= np.median(ratio) <= 1.25, np.median(ratio)


def _flux_curve(processed, star_id):
    lc = processed.catalogs()
    s = lc[(lc["id"] == star_id) & (lc["flags"] == 0)]
    flux = 10 ** (-0.4 * (s["mag"].to_numpy() - 15.0))
    return s["bjd_tdb"].to_numpy(), flux, flux * s["mag_err"].to_numpy() / 1.0857


def test_transit_depth_recovered(processed):
    p = processed.params["transit"]
    t, f, e = _flux_curve(processed, p["id"])
    shape = 1 - transit_model(t, p["t0_bjd"], 1.0, p["duration_d"], p["ingress_d"])
    design = np.column_stack([np.ones_like(t), -shape]) / e[:, None]
    (a, ad), *_ = np.linalg.lstsq(design, f / e, rcond=None)
    assert (shape > 0.99).sum() >= 5 and (shape == 0).sum() >= 10
    assert ad / a == pytest.approx(p["depth"], rel=0.1)


def test_variable_amplitude_recovered(processed):
    p = processed.params["variable"]
    t, f, e = _flux_curve(processed, p["id"])
    ph = 2 * np.pi * (t - p["t0_bjd"]) / p["period_d"]
    design = np.column_stack([np.ones_like(t), np.sin(ph), np.cos(ph)]) / e[:, None]
    (a, b, c), *_ = np.linalg.lstsq(design, f / e, rcond=None)
    assert np.hypot(b, c) / a == pytest.approx(p["amplitude"], rel=0.1)


def test_every_point_carries_bjd_tdb_and_utc(processed):
    lc = processed.catalogs()
    per_frame = lc.groupby("frame")[["bjd_tdb", "mjd_utc_mid"]].first()
    truth = processed.truth_frames.loc[per_frame.index]
    # Same frame-centre BJD as the simulator's (computed independently from its own clock).
    assert np.max(np.abs(per_frame["bjd_tdb"] - truth["bjd_tdb"])) * 86400 < 0.01
    assert np.max(np.abs(per_frame["mjd_utc_mid"] - truth["mjd_utc_mid"])) * 86400 < 0.01
