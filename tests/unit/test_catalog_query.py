"""Reference catalogs through astroquery against a local VizieR stand-in on 127.0.0.1
(HTTPS, VOTable answers): queries, cache and offline reruns, retries with backoff,
unreachable versus empty, fallback, band transformations. Nothing touches the network."""

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from fieldphot import bands, catalog_query, config, io, refcat, stages

pytest.importorskip("trustme")
from vizier_server import FakeVizier  # noqa: E402

RA, DEC = 150.25, 20.5


def _gaia(n=60, seed=3):
    rng = np.random.default_rng(seed)
    bprp = rng.uniform(0.4, 1.8, n)
    g = rng.uniform(12, 18, n)
    return Table(
        {
            "RA_ICRS": RA + rng.uniform(-0.1, 0.1, n),
            "DE_ICRS": DEC + rng.uniform(-0.1, 0.1, n),
            "Source": np.arange(1, n + 1) * 1000,
            "pmRA": np.full(n, 100.0),
            "pmDE": np.full(n, -50.0),
            "Gmag": g,
            "e_Gmag": np.full(n, 0.003),
            "BPmag": g + 0.4 * bprp,
            "e_BPmag": np.full(n, 0.01),
            "RPmag": g - 0.6 * bprp,
            "e_RPmag": np.full(n, 0.01),
        }
    )


def _apass(n=40, seed=4):
    rng = np.random.default_rng(seed)
    v = rng.uniform(11, 16, n)
    return Table(
        {
            "RAJ2000": RA + rng.uniform(-0.1, 0.1, n),
            "DEJ2000": DEC + rng.uniform(-0.1, 0.1, n),
            "recno": np.arange(n),
            "Vmag": v,
            "e_Vmag": np.full(n, 0.02),
            "Bmag": v + 0.6,
            "e_Bmag": np.full(n, 0.03),
        }
    )


@pytest.fixture
def vizier(tmp_path, monkeypatch):
    fake = FakeVizier({"I/355/gaiadr3": _gaia(), "II/336/apass9": _apass()}, tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_file))
    yield fake
    fake.close()


def _cfg(fake, **kw):
    return {
        **config.defaults("reference_catalog"),
        "catalogs": ["gaia-dr3", "apass-dr9"],
        "vizier_server": fake.server,
        "timeout_s": 1.0,
        "retries": 2,
        "backoff_s": 0.5,
        "mag_limit": 19.0,
        **kw,
    }


def test_gaia_query_transforms_to_v_and_caches_for_offline_reruns(vizier, tmp_path):
    waits = []
    table, meta = catalog_query.field_reference(
        [(RA, DEC, 0.2)], _cfg(vizier), "V", tmp_path / "cache", sleep=waits.append
    )
    assert meta["catalog"] == "gaia-dr3" and meta["fields"][0]["source"] == "vizier"
    src = vizier.tables["I/355/gaiadr3"].to_pandas()
    bprp = src["BPmag"] - src["RPmag"]
    v = src["Gmag"] - np.polynomial.polynomial.polyval(bprp, bands.GAIA["V"][0])
    got = pd.Series(table["mag"].to_numpy(), index=table["id"]).loc[src["Source"]]
    assert np.allclose(got, v, atol=1e-9)
    assert meta["color_index"] == "BP-RP" and (table["epoch"] == 2016.0).all()
    assert table["pmra"].iloc[0] == 100.0 and meta["magnitude_system"] == "Vega"
    (cached,) = (tmp_path / "cache").glob("gaia-dr3_*.parquet")
    _, record = io.read_table(cached, columns=[])
    assert record["request"]["vizier"] == "I/355/gaiadr3" and record["request"]["radius_deg"] == 0.2
    assert record["request"]["mag_limit"] == 19.0 and record["date"] and record["n_rows"] == 60
    # The rerun is offline: the service is gone and nothing is asked.
    n = len(vizier.requests)
    vizier.close()
    again, meta2 = catalog_query.field_reference(
        [(RA, DEC, 0.2)], _cfg(vizier), "V", tmp_path / "cache", sleep=waits.append
    )
    assert len(vizier.requests) == n and meta2["fields"][0]["source"] == "cache"
    pd.testing.assert_frame_equal(again, table)
    assert waits == []


def test_5xx_and_timeouts_are_retried_with_backoff(vizier, tmp_path):
    waits = []
    vizier.fail_next = 2
    catalog_query.field_reference([(RA, DEC, 0.2)], _cfg(vizier), "V", tmp_path / "a", waits.append)
    assert len(vizier.requests) == 3 and waits == [0.5, 1.0]
    vizier.stall_next, vizier.stall_s = 1, 2.5  # longer than timeout_s = 1
    t, meta = catalog_query.field_reference(
        [(RA, DEC, 0.15)], _cfg(vizier), "V", tmp_path / "b", waits.append
    )
    assert meta["catalog"] == "gaia-dr3" and len(t) > 10


def test_unreachable_service_falls_back_to_a_covering_cache_then_the_next_catalog(vizier, tmp_path):
    cache = tmp_path / "cache"
    catalog_query.field_reference([(RA, DEC, 0.3)], _cfg(vizier), "V", cache, sleep=lambda s: None)
    vizier.fail_next = 10**6
    # A smaller field inside the cached one: served from that cache, cut to the new circle.
    t, meta = catalog_query.field_reference(
        [(RA, DEC, 0.05)], _cfg(vizier), "V", cache, lambda s: 0
    )
    assert meta["fields"][0]["source"] == "cache-cover" and 0 < len(t) < 60
    # Elsewhere, nothing cached: every catalog unreachable, and the error says so.
    with pytest.raises(
        catalog_query.CatalogError, match="gaia-dr3: service unreachable.*apass-dr9"
    ):
        catalog_query.field_reference([(RA + 5, DEC, 0.1)], _cfg(vizier), "V", cache, lambda s: 0)


def test_no_stars_is_not_unreachable_and_the_next_catalog_answers(vizier, tmp_path):
    vizier.tables["I/355/gaiadr3"] = vizier.tables["I/355/gaiadr3"][:0]
    t, meta = catalog_query.field_reference(
        [(RA, DEC, 0.2)], _cfg(vizier), "V", tmp_path, lambda s: 0
    )
    assert meta["catalog"] == "apass-dr9" and "gaia-dr3: no stars within" in meta["skipped"][0]
    assert meta["color_index"] == "B-V" and np.allclose(t["color"], 0.6)
    with pytest.raises(catalog_query.CatalogError, match="no stars within.*no stars within"):
        catalog_query.field_reference(
            [(RA + 20, DEC, 0.1)], _cfg(vizier), "V", tmp_path, lambda s: 0
        )


def test_coverage_orders_and_skips_catalogs():
    north = [s.name for s in catalog_query.covering(list(catalog_query.SPECS), 40.0)]
    south = [s.name for s in catalog_query.covering(list(catalog_query.SPECS), -45.0)]
    assert "ps1-dr1" in north and "skymapper-dr4" not in north
    assert "skymapper-dr4" in south and "ps1-dr1" not in south


def test_band_transformations_against_published_values():
    one = lambda m, e=0.0: (np.array([m]), np.array([e]))  # noqa: E731
    # Jordi et al. (2006): V = g - 0.565 (g - r) - 0.016, B = g + 0.313 (g - r) + 0.219.
    sdss = {"g": one(15.0), "r": one(14.5)}
    assert bands.derive("V", sdss)[0][0] == pytest.approx(15.0 - 0.565 * 0.5 - 0.016)
    assert bands.derive("B", sdss)[0][0] == pytest.approx(15.0 + 0.313 * 0.5 + 0.219)
    # ... and g = V + 0.630 (B - V) - 0.124.
    assert bands.derive("g", {"B": one(15.6), "V": one(15.0)})[0][0] == pytest.approx(15.254)
    # Gaia DR3 section 5.5.1: G - r at BP - RP = 1 is the sum of its coefficients.
    gaia = {"G": one(15.0), "BP": one(15.4), "RP": one(14.4)}
    assert bands.derive("r", gaia)[0][0] == pytest.approx(15.0 - sum(bands.GAIA["r"][0]))
    # Outside a relation's colour range there is no magnitude.
    assert np.isnan(bands.derive("i", {**gaia, "BP": one(17.0)})[0][0])
    # Blanton & Roweis (2007): V_AB = V_Vega + 0.02, r_Vega = r_AB - 0.16.
    assert bands.to_system(15.0, "V", "AB") == pytest.approx(15.02)
    assert bands.to_system(15.0, "r", "Vega") == pytest.approx(14.84)


def test_reference_catalog_stage_queries_the_fields_of_the_manifest(vizier, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = pd.DataFrame(
        {
            "kind": "science",
            "status": "ok",
            "filter": ["Johnson V", "Johnson V"],
            "ra": [RA, RA + 0.001],
            "dec": [DEC, DEC],
            "naxis1": 1024,
            "naxis2": 1024,
            "pixel_scale": 0.6,
        }
    )
    io.write_table(tmp_path / "manifest.parquet", manifest, {})
    cfg = {**_cfg(vizier), "path": "", "cache_dir": "resources/catalogs"}
    stages.reference_catalog(tmp_path / "manifest.parquet", tmp_path / "refcat.parquet", cfg, cfg)
    t, meta = io.read_table(tmp_path / "refcat.parquet")
    assert meta["band"] == "V" and meta["catalog"] == "gaia-dr3" and len(t) > 0
    assert list((tmp_path / "resources" / "catalogs").glob("gaia-dr3_*.parquet"))
    (req,) = vizier.requests
    assert float(req["-c.rd"]) == pytest.approx(
        0.5 * np.hypot(1024, 1024) * 0.6 / 3600 * 1.1, abs=2e-3
    )


def test_a_night_in_two_filters_gets_both_bands_each_on_its_own_system(vizier, tmp_path):
    manifest = pd.DataFrame(
        {
            "kind": "science",
            "status": "ok",
            "filter": ["V", "r'", "V"],
            "ra": RA,
            "dec": DEC,
            "naxis1": 1024,
            "naxis2": 1024,
            "pixel_scale": 0.6,
        }
    )
    io.write_table(tmp_path / "manifest.parquet", manifest, {})
    cfg = {**_cfg(vizier), "path": "", "cache_dir": str(tmp_path / "cache")}
    stages.reference_catalog(tmp_path / "manifest.parquet", tmp_path / "refcat.parquet", cfg, cfg)
    t, meta = io.read_table(tmp_path / "refcat.parquet")
    assert meta["bands"] == {
        "V": {"color_index": "BP-RP", "magnitude_system": "Vega"},
        "r": {"color_index": "BP-RP", "magnitude_system": "AB"},
    }
    assert len(vizier.requests) == 1  # one query serves both bands
    src = vizier.tables["I/355/gaiadr3"].to_pandas().set_index("Source").loc[t["id"]]
    bprp = (src["BPmag"] - src["RPmag"]).to_numpy()
    r = src["Gmag"].to_numpy() - np.polynomial.polynomial.polyval(bprp, bands.GAIA["r"][0])
    in_r, band = refcat.in_band(t, meta, "r")
    assert band == {"band": "r", "color_index": "BP-RP", "magnitude_system": "AB"}
    assert np.allclose(in_r["mag"], r, equal_nan=True)
    in_v, band = refcat.in_band(t, meta, "V")
    assert band["band"] == "V" and np.allclose(in_v["mag"], t["mag_V"], equal_nan=True)
