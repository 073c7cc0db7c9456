"""Moving targets: ephemerides (JPL Horizons and MPC exports, rates, a Horizons
designation through a local server and the cache), trailed-source photometry, and the
simulated asteroid night end to end: its rotation period and amplitude against truth,
star crossings flagged, the ALCDEF file valid."""

import http.server
import json
import threading

import numpy as np
import pandas as pd
import pytest
from astropy.timeseries import TimeSeries
from conftest import simulated_night  # tests/ is on the path (its conftest)

from fieldphot import asteroid, ephemeris, moving, synthetic
from fieldphot.flags import Flag
from fieldphot.io import FrameError
from fieldphot.lightcurves import BAD_FOR_SUMMARY
from fieldphot.photometry import moffat_alpha


def _trail(shape, start, end, flux, fwhm):
    """A trailed star drawn by the simulator's own Moffat stamps (not the model the
    photometry corrects with)."""
    image = np.zeros(shape)
    alpha = moffat_alpha(fwhm, 3.0)
    xs = np.linspace(start[0], end[0], 40)
    ys = np.linspace(start[1], end[1], 40)
    for x, y in zip(xs, ys, strict=True):
        x0, y0, st = synthetic._stamp(x, y, alpha, 3.0, int(np.ceil(alpha * 8)))
        synthetic._add(image, x0, y0, flux / len(xs) * st)
    return image


def test_trailed_source_flux_where_a_round_aperture_loses():
    """Trail 3 x FWHM: the stadium aperture's total flux within 2 % of truth; a round
    aperture of the same radius, corrected as a point source, loses more than 10 %."""
    fwhm, radius, start, end = 3.0, 4.5, (45.5, 50.3), (54.5, 50.3)
    image = _trail((100, 100), start, end, 1e5, fwhm)
    growth = moving.trail_fraction(0.0, radius, fwhm)
    mask = np.zeros(image.shape, np.int32)
    ratios, round_ratios = [], []
    for seed in range(5):
        noisy = np.random.default_rng(seed).poisson(image + 200.0).astype(float)
        err = np.sqrt(image + 200.0)
        pill = moving.measure(noisy, err, mask, start, end, fwhm, radius, (12, 18), growth)
        mid = np.mean([start, end], axis=0)
        disc = moving.measure(noisy, err, mask, mid, mid, fwhm, radius, (12, 18), growth)
        ratios.append(pill["flux"] / 1e5)
        round_ratios.append(disc["flux"] / 1e5)
        assert abs(pill["flux"] / 1e5 - 1) < 4 * pill["flux_err"] / 1e5
    assert abs(np.mean(ratios) - 1) < 0.02
    assert np.mean(round_ratios) < 0.90
    assert pill["trail_px"] == pytest.approx(9.0)


def test_star_in_the_aperture_is_flagged():
    image = _trail((100, 100), (45.0, 50.0), (47.0, 50.0), 1e5, 3.0) + 200.0
    image += _trail((100, 100), (50.0, 52.0), (50.0, 52.0), 3e4, 3.0)  # a star 3 px away
    err, mask = np.sqrt(image), np.zeros(image.shape, np.int32)
    stars = ([50.0], [52.0], [3e4], [6.0])
    m = moving.measure(image, err, mask, (45.0, 50.0), (47.0, 50.0), 3.0, 6.0, (12, 18),
                       stars=stars, recenter_px=3.0)  # fmt: skip
    assert m["flags"] & Flag.STAR_CROSSING and m["contamination"] > 0.1
    assert m["shift"] == 0.0  # a star nearby would pull the centre: not recentred
    far = moving.measure(image, err, mask, (15.0, 20.0), (17.0, 20.0), 3.0, 6.0, (8, 12),
                         stars=stars)  # fmt: skip
    assert not far["flags"] & Flag.STAR_CROSSING


def test_horizons_and_mpc_exports_read():
    rock = synthetic._Asteroid(synthetic.ASTEROID_NIGHT, _one_star(), _wcs(), 2460384.7)
    text = rock.horizons_text(2460384.6, 2460384.8, "SIMROCK")
    table = ephemeris.parse(text)
    assert len(table) >= 29 and table["delta"].iloc[0] == pytest.approx(1.35)
    at = ephemeris.interpolate(table, [2460384.7123])
    ra, dec = rock.sky([2460384.7123])
    assert (
        abs(at["ra"].iloc[0] - ra[0]) * 3600 < 0.01
        and abs(at["dec"].iloc[0] - dec[0]) * 3600 < 0.01
    )
    # The API's JSON reply holds the same text.
    assert ephemeris.parse(json.dumps({"result": text}))["ra"].equals(table["ra"])
    mpc = (
        "Date       UT      R.A. (J2000) Decl.  Delta     r     El.    Ph.   V\n"
        "2024 03 15 030000 10 01 02.3 +20 30 45  1.234  2.100  150.2  12.3  15.2  0.52  110.3\n"
        "2024 03 15 040000 10 01 04.3 +20 30 15  1.234  2.100  150.2  12.3  15.2  0.52  110.3\n"
    )
    m = ephemeris.parse(mpc)
    assert m["ra"].iloc[0] == pytest.approx(150.259583, abs=1e-6)
    assert m["jd_utc"].iloc[1] - m["jd_utc"].iloc[0] == pytest.approx(1 / 24)
    assert m["phase"].iloc[0] == 12.3
    # Horizons' default text table (not CSV): sexagesimal, marks, pairs, times as h m s.
    plain = ephemeris.parse(rock.horizons_text(2460384.6, 2460384.8, "SIMROCK", csv=False))
    assert len(plain) == len(table)
    assert np.allclose(plain["jd_utc"], table["jd_utc"], atol=1e-8)
    assert np.allclose(plain["ra"], table["ra"], atol=0.01 / 3600 * 15)
    assert np.allclose(plain["dec"], table["dec"], atol=0.01 / 3600)
    for col in ("delta", "r", "phase", "vmag", "pab_lon", "pab_lat"):
        assert np.allclose(plain[col], table[col]), col


def test_horizons_reply_of_astroquery_reads():
    """A real Horizons API reply (astroquery's recorded Ceres ephemeris), if installed."""
    from pathlib import Path

    import astroquery.jplhorizons

    sample = Path(astroquery.jplhorizons.__file__).parent / "tests/data/ceres_ephemerides_range.txt"
    if not sample.exists():
        pytest.skip("astroquery's recorded Horizons replies are not installed")
    t = ephemeris.read(sample)
    assert t["ra"].iloc[0] == pytest.approx(101.73343) and t["r"].iloc[0] == pytest.approx(
        2.603715306632
    )
    assert t["delta"].iloc[0] == pytest.approx(3.51731638211972) and t["phase"].iloc[
        0
    ] == pytest.approx(8.3884)


def test_rates_and_bad_files(tmp_path):
    p = ephemeris.at({"ra": 10.0, "dec": 0.0, "epoch_jd": 2460000.5, "rate_ra": 1.0,
                      "rate_dec": 0.0}, [2460000.5 + 1 / 24])  # fmt: skip
    assert (p["ra"].iloc[0] - 10.0) * 3600 == pytest.approx(60.0)
    bad = tmp_path / "eph.txt"
    bad.write_text("nothing here\n")
    with pytest.raises(FrameError, match=r"eph.txt: no ephemeris rows"):
        ephemeris.read(bad)
    with pytest.raises(FrameError, match="cannot be read"):
        ephemeris.read(tmp_path / "missing.txt")


def test_horizons_designation_through_a_local_server_then_the_cache(tmp_path):
    """A designation is asked of a server speaking the Horizons API (here on 127.0.0.1)
    once per night; later calls, with the server gone, read the cache."""
    rock = synthetic._Asteroid(synthetic.ASTEROID_NIGHT, _one_star(), _wcs(), 2460384.7)
    reply = rock.horizons_text(2460383.9, 2460386.0, "SIMROCK").encode()
    asked = []

    class Horizons(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's name
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Horizons)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/api/horizons.api"
    target = {"name": "SIMROCK", "horizons": "99999"}
    jd = [2460384.65, 2460384.75]
    site = {"lat": 31.9583, "lon": -111.5967, "elev": 2096.0}
    first = ephemeris.at(target, jd, tmp_path, site, url)
    assert len(asked) == 1 and "COMMAND" in asked[0] and "SITE_COORD" in asked[0]
    server.shutdown()
    server.server_close()
    again = ephemeris.at(target, jd[::-1], tmp_path, site, url)
    assert len(asked) == 1 and np.allclose(again["ra"].to_numpy()[::-1], first["ra"])
    later = ephemeris.at(target, [2460385.05], tmp_path, site, url)  # 06:12 local: same night
    assert len(asked) == 1 and np.isfinite(later["ra"]).all()
    ra, _ = rock.sky(jd)
    assert np.allclose(first["ra"], ra, atol=1e-6)
    with pytest.raises(FrameError, match=r"did not answer .*targets\[\]\.ephemeris"):
        ephemeris.at(target, [2460390.5], tmp_path, site, url)


def _one_star():
    return pd.DataFrame(
        {"id": [1], "ra": [150.25], "dec": [20.5], "mag": [15.5], "kind": ["constant"]}
    )


def _wcs():
    return synthetic._nominal_wcs(synthetic.ASTEROID_NIGHT)


@pytest.fixture(scope="module")
def asteroid_night(tmp_path_factory):
    root = tmp_path_factory.mktemp("asteroid_night")
    night = simulated_night(root, synthetic.ASTEROID_NIGHT)
    ts = TimeSeries.read(root / "results/lightcurves/targets/SIMROCK.ecsv", format="ascii.ecsv")
    truth = pd.read_parquet(root / "truth/asteroid.parquet")
    return night, ts, ts.to_pandas().merge(truth, on="frame", suffixes=("", "_true")), root


def test_asteroid_period_and_amplitude(asteroid_night):
    night, ts, _, _ = asteroid_night
    fit, truth = ts.meta["rotation"], night.params["asteroid"]
    assert fit["period_h"] == pytest.approx(truth["period_h"], rel=0.01)
    assert abs(fit["period_h"] - truth["period_h"]) < 4 * fit["period_err_h"]
    assert fit["amplitude"] == pytest.approx(truth["amplitude"], rel=0.10)
    assert fit["n_peaks"] == 2


def test_asteroid_points_against_truth_and_crossings_flagged(asteroid_night):
    _, _, m, _ = asteroid_night
    flagged = (m["flags"].to_numpy() & int(Flag.STAR_CROSSING)) != 0
    # The star it passes: every frame it lies within the aperture (2 FWHM) is flagged.
    crossing = m["star_gap_px"] < 2 * m["fwhm"]
    assert crossing.sum() >= 3 and flagged[crossing].all()
    good = ~flagged & ((m["flags"].to_numpy() & int(BAD_FOR_SUMMARY)) == 0)
    assert good.sum() >= 0.5 * len(m)
    d = (m["mag"] - m["mag_true"])[good]
    pull = (d - np.median(d)) / m["mag_err"][good]
    assert abs(np.median(d)) < 0.01  # calibrated to the catalog's system
    assert np.all(np.abs(pull) < 4) and 0.7 < np.std(pull) < 1.3
    # Times: light-time corrected by Delta / c; reduced magnitude from r and Delta.
    assert np.allclose(m["jd_utc"] - m["jd_ltc"], 1.35 * asteroid.LIGHT_DAYS_PER_AU)
    assert np.allclose(m["mag_reduced"], m["mag_ens"] - 5 * np.log10(2.2 * 1.35))


def test_asteroid_alcdef_and_plot(asteroid_night):
    _, _, m, root = asteroid_night
    base = root / "results/lightcurves/targets/SIMROCK"
    text = (base.parent / "SIMROCK_alcdef.txt").read_text()
    assert asteroid.alcdef_missing(text) == []
    assert "OBJECTNUMBER=99999" in text and "LTCAPP=AUTO" in text and "DIFFERMAGS=FALSE" in text
    data = [line for line in text.splitlines() if line.startswith("DATA=")]
    good = ((m["flags"].to_numpy() & int(BAD_FOR_SUMMARY | Flag.STAR_CROSSING)) == 0) & np.isfinite(
        m["mag_ens"]
    )
    assert len(data) == good.sum()
    assert (base.parent / "SIMROCK_phased.png").stat().st_size > 10_000


def test_trailed_asteroid_night(tmp_path):
    """The fast asteroid (trail 3 x FWHM) through the whole night: its total flux within
    2 % of truth on the frames no star crosses."""
    simulated_night(tmp_path, synthetic.TRAILED_NIGHT)
    truth = pd.read_parquet(tmp_path / "truth/asteroid.parquet")
    rows = pd.concat(
        pd.read_parquet(p).query("target == 'SIMROCK'").assign(frame=p.stem)
        for p in sorted((tmp_path / "results/photometry").glob("*/*.parquet"))
    )
    m = rows.merge(truth, on="frame", suffixes=("", "_true"))
    assert (m["trail_px"] > 8.9).all()
    clear = (m["flags"].to_numpy() & int(Flag.STAR_CROSSING | BAD_FOR_SUMMARY)) == 0
    assert clear.sum() >= 4
    ratio = (m["flux"] / m["flux_e"])[clear]
    assert abs(np.median(ratio) - 1) < 0.02
    assert np.all(np.abs(ratio - 1) < 4 * (m["flux_err"] / m["flux_e"])[clear] + 0.01)
