"""PSF photometry of one frame (``photometry.mode: psf``): an empirical PSF built from the
frame's isolated bright stars (photutils ``EPSFBuilder``), fitted at the star list's
fixed positions with overlapping stars fitted together (photutils ``PSFPhotometry`` with
a ``SourceGrouper``): a star's flux measured beside a brighter neighbour instead of
carrying part of the neighbour's light.

Examples
--------
>>> import numpy as np
>>> from scipy.spatial import cKDTree
>>> from fieldphot.synthetic import render_stars
>>> rng = np.random.default_rng(0)
>>> x, y = rng.uniform(20, 236, 40), rng.uniform(20, 236, 40)
>>> flux = 10 ** rng.uniform(4.5, 5.5, 40)
>>> img = render_stars((256, 256), x, y, flux, 3.0, 100.0, rng) - 100.0
>>> isolated = cKDTree(np.c_[x, y]).query(np.c_[x, y], 2)[0][:, 1] > 12
>>> model, info = build(img, x[isolated], y[isolated], fwhm=3.0, size=15)
>>> f = fit(img, np.sqrt(np.abs(img) + 125), np.zeros(img.shape, bool), model, x, y, flux, 3.0)
>>> ratio = f["flux"] / flux  # the model's unit is its stamp's flux: one scale for all stars
>>> info["n_stars"], bool(np.std(ratio / np.median(ratio)) < 0.01)
(30, True)
"""

import numpy as np
import pandas as pd


def build(sub, x, y, fwhm: float, size: int, oversampling: int = 2, maxiters: int = 10):
    """The frame's empirical PSF from the stars at (``x``, ``y``) (bright, unsaturated and
    isolated: the caller's choice) on the background-subtracted image ``sub``, in stamps
    of ``size`` px (odd), normalised to unit flux within the stamp.

    Returns
    -------
    model : photutils.psf.ImagePSF or None
        None with fewer than 5 usable stars.
    info : dict
        ``n_stars`` used and ``residual_rms`` (the stars' rms residual after subtracting
        the model, relative to their peak).
    """
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars

    size = int(size) | 1
    if len(x) < 5:
        return None, {"n_stars": int(len(x)), "residual_rms": np.nan}
    stars = extract_stars(NDData(np.asarray(sub, float)), Table({"x": x, "y": y}), size=size)
    if len(stars) < 5:
        return None, {"n_stars": len(stars), "residual_rms": np.nan}
    builder = EPSFBuilder(oversampling=oversampling, maxiters=maxiters, progress_bar=False)
    model, fitted = builder.build_epsf(stars)
    residuals = []
    for s in fitted.all_good_stars:
        yy, xx = np.mgrid[: s.shape[0], : s.shape[1]]
        pred = s.flux * model.evaluate(xx, yy, 1.0, *s.cutout_center)
        residuals.append(np.std(s.data - pred) / max(float(np.max(s.data)), 1e-9))
    return model, {
        "n_stars": len(fitted.all_good_stars),
        "residual_rms": float(np.median(residuals)),
    }


def fit(
    image, err, bad, model, x, y, flux0, fwhm: float, sky=None, recenter_px: float = 0.0
) -> pd.DataFrame:
    """PSF fluxes at fixed positions (within ``recenter_px`` when it is above 0), stars
    closer than 2.5 FWHM fitted together, bad pixels (``bad``) left out, each star's
    ``sky`` (per pixel; default none: ``image`` is background-subtracted) removed.

    Returns
    -------
    DataFrame
        ``flux`` and ``flux_err`` (the fit's, scaled up by the reduced chi-square where it
        exceeds 1), ``chi2`` (reduced), ``masked`` (the fraction of the fitted pixels left
        out), ``group_size``, ``x``, ``y``.
    """
    from astropy.table import Table
    from photutils.psf import PSFPhotometry, SourceGrouper

    model = model.copy()
    model.x_0.fixed = recenter_px <= 0
    model.y_0.fixed = recenter_px <= 0
    shape = int(np.ceil(1.5 * fwhm)) * 2 + 1
    phot = PSFPhotometry(
        model,
        (shape, shape),
        grouper=SourceGrouper(min_separation=2.5 * fwhm),
        xy_bounds=recenter_px if recenter_px > 0 else None,
        group_warning_threshold=10**6,
    )
    init = Table({"x": np.asarray(x, float), "y": np.asarray(y, float),
                  "flux": np.clip(np.nan_to_num(flux0), 1.0, None)})  # fmt: skip
    if sky is not None:
        init["local_bkg"] = np.nan_to_num(np.asarray(sky, float))
    res = phot(np.asarray(image, float), error=np.asarray(err, float), mask=bad, init_params=init)
    chi2 = np.asarray(res["reduced_chi2"], float)
    n_pix = np.asarray(res["n_pixels_fit"], float)
    return pd.DataFrame(
        {
            "x": np.asarray(res["x_fit"], float),
            "y": np.asarray(res["y_fit"], float),
            "flux": np.asarray(res["flux_fit"], float),
            "flux_err": np.asarray(res["flux_err"], float)
            * np.sqrt(np.fmax(np.nan_to_num(chi2), 1.0)),
            "chi2": chi2,
            "masked": 1.0 - n_pix / shape**2,
            "group_size": np.asarray(res["group_size"], int),
        }
    )
