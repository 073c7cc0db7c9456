"""Photometry and absolute calibration on a simulated night against its truth: colour
term, zeropoint bias, error pulls, limiting magnitude versus injected stars, and forced
photometry of a faint target."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.table import Table
from astropy.units import UnitsWarning

from fieldphot import io, layout, stages, synthetic, validation
from fieldphot.runner import run_night

COLOR_TERM = 0.08
FORMATS = ["csv", "ecsv", "parquet", "fits", "json"]
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
    # And the emptiest patch of sky well inside the frame: a limit on every frame.
    inner = stars.loc[first.index[first["x"].between(60, 450) & first["y"].between(60, 450)]]
    ra, dec = np.meshgrid(
        np.linspace(inner["ra"].min(), inner["ra"].max(), 60),
        np.linspace(inner["dec"].min(), inner["dec"].max(), 60),
    )
    cosd = np.cos(np.radians(stars["dec"].mean()))
    sep = np.hypot(
        (ra.ravel()[:, None] - stars["ra"].to_numpy()[None]) * cosd,
        dec.ravel()[:, None] - stars["dec"].to_numpy()[None],
    ).min(axis=1)
    blank = ra.ravel()[np.argmax(sep)], dec.ravel()[np.argmax(sep)]
    cfg["targets"] = [
        {
            "name": "faint",
            "ra": float(stars.loc[target.name, "ra"]),
            "dec": float(stars.loc[target.name, "dec"]),
        },
        {"name": "blank", "ra": float(blank[0]), "dec": float(blank[1])},
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
    pull = validation.error_pulls(results, validation.Truth(sim.root))
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


def test_exports_in_every_format_match_the_catalogs(night, tmp_path):
    sim, results, _ = night
    paths = sorted((results / "catalogs").rglob("*.parquet"))
    names = stages.export(
        paths, tmp_path, {"formats": FORMATS, "catalog": True, "t0_mjd": None}, True
    )
    assert names == layout.export_names(FORMATS, True, True)
    rows = pd.concat([io.read_table(p)[0] for p in paths], ignore_index=True)
    with warnings.catch_warnings():  # 'electron' is not a FITS-standard unit
        warnings.simplefilter("ignore", UnitsWarning)
        text = {c: str for c in ("frame", "night", "filter", "target")}  # CSV has no types
        for fmt in ("csv", "ecsv", "fits", "parquet"):
            path = tmp_path / f"catalog.{fmt}"
            t = pd.read_csv(path, dtype=text) if fmt == "csv" else Table.read(path).to_pandas()
            assert len(t) == len(rows), fmt
            np.testing.assert_allclose(t["mag"], rows["mag"], rtol=1e-12, equal_nan=True)
            assert list(t["frame"].astype(str)) == list(rows["frame"]), fmt
            if fmt != "csv":
                assert str(Table.read(path)["flux"].unit) == "electron"
    doc = json.loads((tmp_path / "targets.json").read_text())
    assert doc["meta"]["magnitude_system"] == "Vega" and doc["units"]["mag_lim"] == "mag"
    assert len(doc["rows"]) == 2 * NIGHT.n_science
    assert {r["target"] for r in doc["rows"]} == {"faint", "blank"}


def test_gcn_table_gives_measurements_and_limits(night):
    _, results, _ = night
    text = (results / "export" / "gcn.txt").read_text()
    rows = pd.concat(_catalogs(results)[0])
    lines = [ln.split() for ln in text.splitlines()[1:] if ln.startswith(("faint", "blank"))]
    assert len(lines) == 2 * NIGHT.n_science
    for cells in lines:
        r = rows[
            (rows["target"] == cells[0])
            & np.isclose(rows["mjd_utc_mid"], float(cells[3]), rtol=0, atol=1e-5)
        ]
        r = r.iloc[0]
        if r["detected"]:
            assert cells[-3:] == [f"{r['mag']:.2f}", "+/-", f"{r['mag_err']:.2f}"]
        else:
            assert cells[-2:] == [">", f"{r['mag_lim']:.2f}"]
    blank = [c for c in lines if c[0] == "blank"]
    assert sum(c[-2] == ">" for c in blank) >= NIGHT.n_science - 1  # 3-sigma: rarely a blip
    assert "Vega system" in text and "5-sigma" in text


def test_limiting_magnitude_matches_the_50_percent_completeness_of_injected_stars(night):
    sim, results, _ = night
    c = validation.completeness(results, validation.Truth(sim.root), sim.frames["frame"].iloc[3])
    assert c["fraction"][0] > 0.9 and c["fraction"][-1] < 0.2
    assert c["m50"] == pytest.approx(c["maglim"], abs=0.1)  # the bar is 0.2; measured 0.02
