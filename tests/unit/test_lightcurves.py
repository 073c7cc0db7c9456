"""Light curves against the simulator's truth: noise, errors, transit, variable, time."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import simulated_night  # tests/ is on the path (its conftest)

from fieldphot import config, io, layout, lightcurves, stages, steps, synthetic, validation
from fieldphot.flags import Flag

#: A transit night as exoplanet follow-up observes it: a 30 mmag, 1.5 h transit of the
#: night's forced target at 75 s cadence (about 57 points in transit), with 45 minutes of
#: baseline on either side.
TRANSIT_NIGHT = synthetic.SimConfig(
    nx=512,
    ny=512,
    n_science=150,
    cadence=75.0,
    transit_depth=0.03,
    transit_duration_h=1.5,
    seed=24,
    targets=True,
)


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


def test_bright_constant_stars_reach_the_noise_model_after_the_ensemble(processed):
    s = validation.constant_star_noise(processed.results, processed.truth, min_snr=100)
    assert len(s) >= 20
    assert np.median(s["rms"] / s["expected"]) == pytest.approx(1.0, abs=0.1)


def test_a_linear_detector_gets_no_nonlinear_level(processed):
    """The simulator's detector is linear to saturation: the night finds no level from
    which its stars scatter more, and flags nothing NONLINEAR."""
    frames, _ = io.read_table(processed.results / "lightcurves" / "frames.parquet")
    assert frames["nonlinear_fraction"].isna().all()
    lc = processed.catalogs()
    assert lc["peak"].notna().mean() > 0.9
    assert not ((lc["flags"] & int(Flag.NONLINEAR)) != 0).any()


def test_every_star_has_a_point_or_a_flagged_gap_on_every_frame(processed):
    lc = processed.catalogs()
    per_star = lc.groupby("id").size()
    assert (per_star == len(processed.frames)).all()
    gap = (lc["flags"] & int(Flag.NO_DATA)) != 0
    assert lc.loc[gap, "mag_ens"].isna().all() and lc.loc[~gap, "x"].notna().all()
    # sorted by star, then time
    assert (lc.groupby("id")["bjd_tdb"].diff().dropna() > 0).all()


def test_comparison_stars_leave_out_the_variable_and_the_targets(processed):
    s, _ = io.read_table(processed.results / "lightcurves" / "summary.parquet")
    comp = s.set_index("id")["comparison"]
    assert comp.sum() >= 20
    for kind in ("transit", "variable"):
        assert not comp[processed.params[kind]["id"]]
    assert not comp[comp.index < 0].any()  # forced targets


def test_transit_depth_and_mid_time_recovered(processed):
    p = processed.params["transit"]
    t, f, e = validation.flux_curve(processed.results, p["id"])
    in_transit = np.abs(t - p["t0_bjd"]) < p["duration_d"] / 2 - p["ingress_d"]
    assert in_transit.sum() >= 5 and (~in_transit).sum() >= 10
    guess = p["t0_bjd"] + 10 / 1440  # start ten minutes off
    t0, depth, depth_err = validation.transit_fit(t, f, e, guess, p["duration_d"], p["ingress_d"])
    # Twelve in-transit points of ~2 mmag measure a 20 mmag depth to ~0.6 mmag (3 %): the
    # depth must agree with the truth within three of its errors, and the error be honest
    # enough to mean something (within 5 %: the transit night below).
    assert abs(depth - p["depth"]) < 3 * depth_err and depth_err < 0.05 * p["depth"]
    assert abs(t0 - p["t0_bjd"]) * 1440 < 2.0


@pytest.fixture(scope="module")
def transit_night(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("transit_night")
    simulated_night(root, TRANSIT_NIGHT)
    return root


def test_transit_depth_within_5_percent_and_mid_time_within_2_minutes(transit_night):
    p = validation.Truth(transit_night).params["transit"]
    t, f, e = validation.flux_curve(transit_night / "results", p["id"])
    guess = p["t0_bjd"] + 10 / 1440  # start ten minutes off
    t0, depth, depth_err = validation.transit_fit(t, f, e, guess, p["duration_d"], p["ingress_d"])
    assert abs(depth / p["depth"] - 1) < 0.05 and abs(depth - p["depth"]) < 3 * depth_err
    assert depth_err < 0.02 * p["depth"]  # the 5 % is more than twice the measurement's error
    assert abs(t0 - p["t0_bjd"]) * 1440 < 2.0


def test_the_reports_transit_fit_gives_depth_and_mid_time(transit_night):
    """Issue 26: a target with an ephemeris gets a transit-model fit (batman) in the
    report, with depth and mid-time and honest errors, started ten minutes off."""
    from fieldphot import report

    p = validation.Truth(transit_night).params["transit"]
    target = yaml.safe_load((transit_night / "config.yaml").read_text())["targets"]
    target = next(t for t in target if t.get("t0_bjd"))
    lc = validation.light_curves(transit_night / "results")
    t = lc[lc["target"].astype(str) == target["name"]]
    fit = report.target_fit(t, {**target, "t0_bjd": target["t0_bjd"] + 10 / 1440})
    assert abs(fit["depth"] / p["depth"] - 1) < 0.05, fit["depth"]
    # the shape (impact parameter, a/R*) is free: its error is in the depth's (3.6 % here)
    assert abs(fit["depth"] - p["depth"]) < 3 * fit["depth_err"]
    assert fit["depth_err"] < 0.05 * p["depth"]
    assert abs(fit["t0"] - p["t0_bjd"]) * 1440 < 2.0
    assert abs(fit["t0"] - p["t0_bjd"]) < 3 * fit["t0_err"]
    fig, fits = report.targets_figure(lc[lc["target"].astype(str) != ""], targets=[target])
    assert list(fits) == [target["name"]] and len(fig.axes) == 4


def test_variable_amplitude_and_period_recovered(processed):
    p = processed.params["variable"]
    t, f, e = validation.flux_curve(processed.results, p["id"])
    amp = validation.sine_amplitude(t, f, e, p["t0_bjd"], p["period_d"])
    assert amp == pytest.approx(p["amplitude"], rel=0.1)
    s, _ = io.read_table(processed.results / "lightcurves" / "summary.parquet")
    star = s.set_index("id").loc[p["id"]]
    assert star["ls_period"] == pytest.approx(p["period_d"], rel=0.005)
    assert star["stetson_j"] > 5 and star["von_neumann"] < 0.5
    quiet = s[s["id"].map(processed.truth.stars["kind"]) == "constant"]
    assert np.nanmedian(quiet["stetson_j"]) < 0.5 and np.nanmedian(quiet["von_neumann"]) > 1.5


def _night_cfg(lightcurves: dict) -> dict:
    """The night step's settings: ``lightcurves`` over the schema's defaults."""
    full = config.with_defaults({"raw_dir": ".", "lightcurves": lightcurves})
    return steps.reads("night_lightcurves", full)


def test_comparison_stars_chosen_by_hand(processed, tmp_path):
    """Issue 26: `lightcurves.comparison_ids` chooses the ensemble by hand; the transit
    host among them is still left out (a target is never its own comparison), and so is
    a chosen star the ensemble finds variable (its chi-square over 3 times the median)."""
    s, _ = io.read_table(processed.results / "lightcurves" / "summary.parquet")
    auto = s.loc[s["comparison"], "id"].tolist()
    host = processed.params["transit"]["id"]
    cats = sorted(processed.results.glob("catalogs/*/*.parquet"))
    out = tmp_path / "n.parquet"
    stages.night_light_curves(cats, out, _night_cfg({"comparison_ids": [*auto[:15], host]}))
    stars = pd.DataFrame(io.read_meta(out)["stars"])
    used = set(stars.loc[stars["comparison"], "id"])
    assert used <= set(auto[:15]) and len(used) >= 12 and host not in used


def test_protected_detrending_keeps_the_transit_depth(processed, tmp_path):
    p = processed.params["transit"]
    cats = sorted(processed.results.glob("catalogs/*/*.parquet"))
    cfg = {
        "detrend": {
            "epd": ["airmass", "sky"],
            "tfa_templates": 8,
            "protect": [{"id": p["id"], "t0_bjd": p["t0_bjd"], "duration_h": 1.3}],
        }
    }
    stages.night_light_curves(cats, tmp_path / "nights" / "n.parquet", _night_cfg(cfg))
    lc = io.read_table(tmp_path / "nights" / "n.parquet")[0]
    star = lc[(lc["id"] == p["id"]) & (lc["flags"] == 0)]
    depths = {}
    for col in ("mag_ens", "mag_detrended"):
        flux = 10 ** (-0.4 * (star[col] - star[col].median())).to_numpy()
        err = flux * star["mag_ens_err"].to_numpy() / 1.0857
        depths[col] = validation.transit_depth(
            star["bjd_tdb"].to_numpy(), flux, err, p["t0_bjd"], p["duration_d"], p["ingress_d"]
        )
    assert depths["mag_detrended"] == pytest.approx(depths["mag_ens"], rel=0.03)


def test_a_targets_ephemeris_protects_its_transit_by_default(processed, tmp_path):
    """EPD and TFA on, no protect windows: the target's ephemeris in `targets` keeps its
    transit (on the forced target and on the catalog star at its position) out of the
    fits, as an explicit window does."""
    p = processed.params["transit"]
    targets = yaml.safe_load(processed.night.config.read_text())["targets"]
    cats = sorted(processed.results.glob("catalogs/*/*.parquet"))
    cfg = {"detrend": {"epd": ["airmass", "sky"], "tfa_templates": 8}}
    lc_of = {}
    for with_ephemeris in (False, True):
        bare = [{k: t[k] for k in ("name", "ra", "dec")} for t in targets]
        tg = [
            {**t, "t0_bjd": p["t0_bjd"], "duration_h": p["duration_d"] * 24}
            if with_ephemeris
            else t
            for t in bare
        ]
        out = tmp_path / f"{with_ephemeris}" / "n.parquet"
        stages.night_light_curves(cats, out, _night_cfg(cfg), tg)
        lc_of[with_ephemeris] = io.read_table(out)[0]
    depth = {}
    for key, lc in lc_of.items():
        star = lc[(lc["id"] == p["id"]) & (lc["flags"] == 0)]
        flux = 10 ** (-0.4 * (star["mag_detrended"] - star["mag_detrended"].median()))
        err = flux * star["mag_ens_err"] / 1.0857
        depth[key] = validation.transit_depth(
            star["bjd_tdb"].to_numpy(),
            flux.to_numpy(),
            err.to_numpy(),
            p["t0_bjd"],
            p["duration_d"],
            p["ingress_d"],
        )
    assert depth[True] == pytest.approx(p["depth"], rel=0.1)
    assert abs(depth[True] / p["depth"] - 1) < abs(depth[False] / p["depth"] - 1)


def test_targets_get_a_time_series_a_plot_and_an_aavso_report(processed):
    from astropy.timeseries import TimeSeries

    names = [t["name"] for t in yaml.safe_load(processed.night.config.read_text())["targets"]]
    assert len(names) == 2
    for name in names:
        stem = processed.results / "lightcurves" / "targets" / layout.safe_name(name)
        ts = TimeSeries.read(f"{stem}.ecsv", format="ascii.ecsv")
        assert ts.time.scale == "tdb" and len(ts) == len(processed.frames)
        assert str(ts["mag_ens"].unit) == "mag" and np.isfinite(ts["mag_ens"]).sum() >= 25
        assert Path(f"{stem}.png").stat().st_size > 1000
        lines = Path(f"{stem}_aavso.txt").read_text().splitlines()
        assert lines[0] == "#TYPE=EXTENDED" and "#DATE=JD" in lines
        data = [ln.split(",") for ln in lines if not ln.startswith("#")]
        assert len(data) == len(processed.frames) and all(len(r) == 15 for r in data)
        jd = np.array([float(r[1]) for r in data])
        assert np.allclose(np.sort(jd) - 2400000.5, np.sort(processed.truth_frames["mjd_utc_mid"]))


def test_every_point_carries_bjd_tdb_and_utc(processed):
    frames, _ = io.read_table(processed.results / "lightcurves" / "frames.parquet")
    per_frame = frames.set_index("frame")[["bjd_tdb", "mjd_utc_mid"]]
    truth = processed.truth_frames.loc[per_frame.index]
    # Same frame-centre BJD as the simulator's (computed independently from its own clock).
    assert np.max(np.abs(per_frame["bjd_tdb"] - truth["bjd_tdb"])) * 86400 < 0.01
    assert np.max(np.abs(per_frame["mjd_utc_mid"] - truth["mjd_utc_mid"])) * 86400 < 0.01
    # Every point carries its frame's UTC and a BJD (its star's own: test below).
    lc = processed.catalogs()
    assert lc["bjd_tdb"].notna().all()
    utc = lc.groupby("frame")["mjd_utc_mid"].first()
    assert np.allclose(utc, truth.loc[utc.index, "mjd_utc_mid"], atol=0.01 / 86400)


def test_extinction_is_fitted_from_the_nights_zeropoints(processed):
    _, meta = io.read_table(processed.results / "lightcurves" / "frames.parquet")
    (fit,) = meta["extinction"]
    assert fit["n"] == len(processed.frames)
    assert fit["k"] == pytest.approx(
        processed.params["sim"]["extinction"], abs=max(3 * fit["k_err"], 0.01)
    )
    assert fit["k_err"] < 0.05


def test_each_star_has_its_own_bjd(processed):
    """BJD_TDB of every point is the star's own (astropy's light-travel time at its
    position and the site), not the pointing's: 6.6 s per degree across a field."""
    from fieldphot import timeutil

    lc = validation.light_curves(processed.results, ["id", "ra", "dec", "mjd_utc_mid", "bjd_tdb"])
    m, _ = io.read_table(processed.results / "manifest.parquet")
    site = m[m["kind"] == "science"].iloc[0]
    far = lc.loc[(lc["ra"] - lc["ra"].median()).abs().idxmax(), "id"]
    pts = lc[lc["id"] == far].iloc[::10]
    truth = timeutil.bjd_tdb(
        pts["mjd_utc_mid"],
        pts["ra"],
        pts["dec"],
        site["site_lat"],
        site["site_lon"],
        site["site_elev"],
    )
    assert np.abs(pts["bjd_tdb"].to_numpy() - truth).max() * 86400 < 0.005


def test_a_target_is_never_its_own_comparison(processed):
    """The unit night's targets are also catalog stars: those rows are no comparison."""
    lc = validation.light_curves(processed.results, ["id", "target", "ra", "dec", "comparison"])
    stars = lc.drop_duplicates("id")
    targets = stars[stars["target"].astype(str) != ""]
    assert len(targets) == 2
    for t in targets.itertuples():
        d = np.hypot((stars["ra"] - t.ra) * np.cos(np.radians(t.dec)), stars["dec"] - t.dec)
        twins = stars[(d * 3600 < 1.0) & (stars["target"].astype(str) == "")]
        assert len(twins) == 1 and not twins["comparison"].any()


def test_blends_are_named_and_ranked_last_as_variables():
    """Issue 26: sorted by chi-square, blended constant stars came first with n_flagged
    0. A blend scattering more than the true variable is named and left unranked."""
    rng = np.random.default_rng(3)
    n = 40
    t = np.arange(n) / 100.0
    star = {
        1: (0.0, 0.0),  # constant
        2: (0.03 * np.sin(2 * np.pi * t / 0.1), 0.0),  # variable
        3: (rng.normal(0, 0.08, n), int(Flag.BLENDED)),  # blend: the widest scatter
    }
    lc = pd.concat(
        pd.DataFrame(
            {
                "id": k,
                "filter": "V",
                "bjd_tdb": t,
                "mag_ens": 12 + signal + rng.normal(0, 0.005, n),
                "mag_ens_err": 0.005,
                "flags": flag,
            }
        )
        for k, (signal, flag) in star.items()
    )
    s = lightcurves.summarize(lc, periodograms=False).set_index("id")
    assert s.loc[3, "blended"] and s.loc[3, "n_blended"] == n
    assert not s.loc[[1, 2], "blended"].any()
    assert s.loc[2, "variability_rank"] == 1 and s.loc[1, "variability_rank"] == 2
    assert pd.isna(s.loc[3, "variability_rank"])
