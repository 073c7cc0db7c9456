"""Photometry and absolute calibration on a simulated night against its truth: colour
term, zeropoint bias, error pulls, limiting magnitude versus injected stars, and forced
photometry of a faint target."""

import numpy as np
import pandas as pd
import pytest
import yaml

from fieldphot import io, measure, synthetic, validation, wcsmodel
from fieldphot.runner import run_night
from fieldphot.synthetic import _stamp, moffat_alpha

COLOR_TERM = 0.08
NIGHT = synthetic.SimConfig(nx=512, ny=512, n_science=10, seed=23, color_term=COLOR_TERM)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour_night")
    sim = synthetic.simulate_night(root, NIGHT)
    stars = sim.stars.set_index("id")
    # The forced target: an isolated star below the catalog limit, near S/N 5.
    first = sim.fluxes[sim.fluxes["frame"] == sim.frames["frame"].iloc[0]].set_index("id")
    xy = first[["x", "y"]].to_numpy()
    d = np.sort(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)), axis=1)[:, 1]
    ok = (d > 25) & first["in_frame"].to_numpy() & (first["x"].between(40, 470)).to_numpy()
    ok &= first["y"].between(40, 470).to_numpy()
    cand = first[ok].assign(mag=stars.loc[first.index[ok], "mag"])
    target = cand.iloc[np.argmin(np.abs(cand["mag"] - 21.3))]
    cfg = yaml.safe_load(sim.config.read_text())
    cfg["zeropoint"] = {"color_term": "fit"}
    cfg["photometry"] = {"mode": "optimal"}
    cfg["targets"] = [
        {
            "name": "faint",
            "ra": float(stars.loc[target.name, "ra"]),
            "dec": float(stars.loc[target.name, "dec"]),
        }
    ]
    run_night(cfg, root / "results", processes=2)
    return sim, root / "results", int(target.name)


def _catalogs(results):
    out = [io.read_table(p) for p in sorted((results / "catalogs").rglob("*.parquet"))]
    return [t for t, _ in out], [m for _, m in out]


def test_injected_colour_term_is_recovered(night):
    _, results, _ = night
    _, metas = _catalogs(results)
    z = pd.DataFrame([m["zeropoint"] for m in metas])
    assert (z["status"] == "ok").all() and (z["color_term_mode"] == "fit").all()
    w = 1 / z["color_term_err"] ** 2
    mean = float(np.sum(w * z["color_term"]) / np.sum(w))
    assert mean == pytest.approx(COLOR_TERM, abs=0.01)
    assert (np.abs(z["color_term"] - COLOR_TERM) < 4 * z["color_term_err"]).all()
    assert (z["color_max"] - z["color_min"] > 0.8).all() and (z["n_used"] >= 20).all()


def test_zeropoint_bias_below_3_mmag(night):
    sim, results, _ = night
    offsets = validation.zeropoint_offsets(results, validation.Truth(sim.root))
    assert len(offsets) == NIGHT.n_science
    assert abs(offsets.mean()) < 0.003, offsets.describe()


def test_error_pulls_of_unsaturated_stars(night):
    sim, results, _ = night
    tables, _ = _catalogs(results)
    c = pd.concat(tables)
    c = c[(c["id"] > 0) & (c["flags"] == 0) & (c["snr"] > 5)]
    truth = sim.fluxes.set_index(["frame", "id"]).loc[list(zip(c["frame"], c["id"], strict=True))]
    c = c[~truth["saturated"].to_numpy()]
    truth = truth[~truth["saturated"].to_numpy()]
    pull = (c["mag"].to_numpy() - truth["mag_true"].to_numpy()) / c["mag_err"].to_numpy()
    assert len(pull) > 300
    robust = 1.4826 * np.median(np.abs(pull - np.median(pull)))
    assert 0.9 <= robust <= 1.1, robust
    core = pull[np.abs(pull) < 5]  # blends with stars below the catalog limit: the tail
    assert 0.9 <= np.std(core) <= 1.1 and len(core) > 0.97 * len(pull)


def test_forced_target_near_snr_5_is_measured_within_its_error(night):
    sim, results, star = night
    tables, _ = _catalogs(results)
    rows = pd.concat([t[t["target"] == "faint"] for t in tables])
    assert len(rows) == NIGHT.n_science
    truth = sim.fluxes[sim.fluxes["id"] == star].set_index("frame").loc[rows["frame"]]
    assert 3 < rows["snr"].median() < 9
    pull = (rows["mag"].to_numpy() - truth["mag_true"].to_numpy()) / rows["mag_err"].to_numpy()
    ok = np.isfinite(pull)
    assert ok.sum() >= 8 and np.mean(np.abs(pull[ok]) < 2) >= 0.8
    # Where it is measured below detect_snr a limit is given, and it is fainter than the star.
    assert np.isfinite(rows["mag_lim"]).all()
    assert (rows["mag_lim"] > truth["mag_true"].to_numpy() - 0.5).all()


def test_limiting_magnitude_matches_the_50_percent_completeness_of_injected_stars(night):
    sim, results, _ = night
    frame = sim.frames["frame"].iloc[3]
    cal = next((results / "calibrated").rglob(f"{frame}.fits"))
    sci, err, mask, _ = io.read_calibrated(cal)
    ph, meta = io.read_table(next((results / "photometry").rglob(f"{frame}.parquet")))
    cat, cmeta = io.read_table(next((results / "catalogs").rglob(f"{frame}.parquet")))
    zp, maglim = cmeta["zeropoint"]["zp"], cmeta["zeropoint"]["maglim"]
    fwhm, exptime = meta["photometry"]["fwhm"], meta["frame"]["exptime"]
    wcs = wcsmodel.wcs_from_string(meta["wcs"])
    src, _ = io.read_table(next((results / "sources").rglob(f"{frame}.parquet")))
    ref, _ = io.read_table(results / "refcat.parquet")
    rng = np.random.default_rng(7)
    mags = rng.uniform(maglim - 1.2, maglim + 1.2, 400)
    # Fakes go where nothing is detected, as in a real completeness test: stars too faint
    # to detect are part of the background the limit describes. They take the frame's
    # true PSF (a real test would use the empirical one).
    known_xy = src[["x", "y"]].to_numpy()
    a = moffat_alpha(float(sim.frames["fwhm"].iloc[3]), NIGHT.moffat_beta)
    recovered = []
    for chunk in np.array_split(np.arange(400), 8):  # a few at a time: no self-crowding
        img = sci.copy()
        xy = []
        while len(xy) < len(chunk):
            p = rng.uniform(30, 482, 2)
            near = np.hypot(*(known_xy - p).T).min() > 12
            if near and all(np.hypot(*(p - q)) > 30 for q in xy):
                xy.append(p)
        model = np.zeros_like(sci)
        for (x, y), m in zip(xy, mags[chunk], strict=True):
            x0, y0, st = _stamp(x, y, a, NIGHT.moffat_beta, 20)
            model[y0 : y0 + st.shape[0], x0 : x0 + st.shape[1]] += 10 ** (-0.4 * (m - zp)) * (
                exptime * st
            )
        img += rng.poisson(model)
        ra, dec = wcs.pixel_to_world_values(*np.array(xy).T)
        targets = [
            {"name": str(i), "ra": r, "dec": d} for i, r, d in zip(chunk, ra, dec, strict=True)
        ]
        t, _ = measure.measure_frame(
            img,
            np.sqrt(err**2 + model),
            mask,
            wcs,
            ref,
            fwhm,
            meta["frame"],
            {"mode": "optimal"},
            targets,
            (src["x"].to_numpy(), src["y"].to_numpy()),
        )
        t = t[t["target"] != ""]
        recovered += list(t["snr"].to_numpy() >= 5)
    recovered = np.array(recovered)
    edges = np.arange(maglim - 1.2, maglim + 1.21, 0.3)
    centre = (edges[:-1] + edges[1:]) / 2
    frac = np.array(
        [
            recovered[(mags >= a) & (mags < b)].mean()
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    m50 = np.interp(0.5, frac[::-1], centre[::-1])
    assert frac[0] > 0.9 and frac[-1] < 0.2
    assert m50 == pytest.approx(maglim, abs=0.2)
