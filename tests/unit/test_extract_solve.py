"""Extraction and astrometry against the simulator's truth."""

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from fieldphot import solve as sol
from fieldphot import validation, wcsmodel


def test_fwhm_and_centroids(processed):
    for frame in processed.frames[::6]:
        src, meta = processed.table("sources", frame)
        fwhm_true = processed.truth_frames.loc[frame, "fwhm"]
        # The pixel-integrated profile is a little broader than the simulated seeing.
        assert 0.99 * fwhm_true < meta["extract"]["fwhm"] < 1.05 * fwhm_true
        truth = processed.truth_fluxes[processed.truth_fluxes["frame"] == frame]
        bright = src[(src["snr"] > 100) & (src["flags"] == 0)]
        d = np.hypot(
            bright["x"].to_numpy()[:, None] - truth["x"].to_numpy()[None],
            bright["y"].to_numpy()[:, None] - truth["y"].to_numpy()[None],
        )
        nearest = d.min(axis=1)
        assert np.median(nearest) < 0.1


def test_wcs_within_a_tenth_of_a_pixel_on_every_frame(processed):
    """Matched stars' positions predicted by the fitted WCS vs. where they truly are."""
    for frame in processed.frames:
        _, meta = processed.table("astrometry", frame)
        assert meta["status"] == "ok", meta.get("reason")
        assert meta["astrometry"]["n_match"] >= 30
    rms = validation.astrometry_rms(processed.results, processed.truth)
    assert len(rms) == len(processed.frames) and (rms < 0.1).all(), rms.max()


def test_header_wcs_reads_quoted_numbers_and_refuses_non_celestial():
    h = fits.Header(
        {
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CRVAL1": "124.6185920672",
            "CRVAL2": "25.33",
            "CRPIX1": "100",
            "CRPIX2": 100,
            "CD1_1": "-2.7e-4",
            "CD1_2": 0.0,
            "CD2_1": 0.0,
            "CD2_2": "2.7e-4",
        }
    )
    w = wcsmodel.header_wcs(h)
    assert w.wcs.crval[0] == pytest.approx(124.6185920672)
    assert wcsmodel.header_wcs(fits.Header({"CTYPE1": "Linear Unbinned ADC Pixels"})) is None


def test_hopeless_field_is_unsolved_not_an_error():
    w = wcsmodel.header_wcs(
        fits.Header(
            {
                "CTYPE1": "RA---TAN",
                "CTYPE2": "DEC--TAN",
                "CRVAL1": 10.0,
                "CRVAL2": 10.0,
                "CRPIX1": 50,
                "CRPIX2": 50,
                "CD1_1": -1e-4,
                "CD2_2": 1e-4,
            }
        )
    )
    rng = np.random.default_rng(3)
    src = pd.DataFrame(
        {
            "x": rng.uniform(0, 100, 30),
            "y": rng.uniform(0, 100, 30),
            "flux": rng.uniform(1, 2, 30),
            "snr": 50.0,
            "flags": 0,
        }
    )
    ref = pd.DataFrame(
        {
            "id": range(30),
            "ra": rng.uniform(9.99, 10.01, 30),
            "dec": rng.uniform(9.99, 10.01, 30),
            "mag": 15.0,
        }
    )
    wcs, matched, info = sol.refine(src, ref, w, (100, 100))
    assert wcs is None and info["status"] == "unsolved" and info["reason"]


def test_sip_fit_recovers_distortion():
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150, 20], [500, 500]
    w.wcs.cd = [[-1.6e-4, 1e-6], [1e-6, 1.6e-4]]
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 1000, 300), rng.uniform(0, 1000, 300)
    ra, dec = w.wcs_pix2world(x, y, 0)
    r2 = (x - 500) ** 2 + (y - 500) ** 2
    xd, yd = x + 2e-9 * r2 * (x - 500), y + 2e-9 * r2 * (y - 500)  # ~1.4 px at the corners
    fit = wcsmodel.fit_tan_sip(xd, yd, ra, dec, [150.001, 20.001], (499.5, 499.5), 3)
    xf, yf = fit.world_to_pixel_values(ra, dec)
    assert np.max(np.hypot(xf - xd, yf - yd)) < 0.01
