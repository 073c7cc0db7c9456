"""Photometry of one frame: every reference star and every forced target, with the
aperture chosen by the config, a curve of growth to total flux, flags, an error model
and the frame's limiting magnitude (arrays and tables in, table out).

Apertures (``mode``): ``fixed`` (``radius_px``), ``fwhm`` (``aperture_fwhm`` x FWHM) or
``optimal`` (per star, the radius of the highest expected S/N on the curve of growth).
Every star is measured in all radii of the curve of growth (``growth_fwhm`` x FWHM up to
``apcor_fwhm`` x FWHM); ``keep_apertures`` writes them all as extra columns.

Errors: the ERR plane (source and sky Poisson noise, dark current, read noise, master
errors) summed over the aperture; the error of the sky estimate; the curve-of-growth
error; scintillation (Young's formula) when enabled. The zeropoint's error is added by
the zeropoint stage.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from astropy.wcs import WCS
>>> from fieldphot.config import defaults
>>> from fieldphot.synthetic import _stamp, moffat_alpha
>>> w = WCS(naxis=2); w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
>>> w.wcs.crval = [10.0, 20.0]; w.wcs.crpix = [50.0, 50.0]; w.wcs.cdelt = [-1e-4, 1e-4]
>>> img = np.full((100, 100), 100.0)
>>> ra, dec = w.pixel_to_world_values([30.0, 70.0, 50.0], [30.0, 60.0, 45.0])
>>> for x, y in ((30.0, 30.0), (70.0, 60.0), (50.0, 45.0)):
...     x0, y0, st = _stamp(x, y, moffat_alpha(3.0, 3.0), 3.0, 12)
...     img[y0:y0 + 25, x0:x0 + 25] += 2e5 * st
>>> ref = pd.DataFrame({"id": [1, 2, 3], "ra": ra, "dec": dec, "mag": 12.0,
...                     "mag_err": 0.01, "color": 0.5})
>>> t, info = measure_frame(img, np.sqrt(img), np.zeros(img.shape, np.int32), w, ref,
...                         fwhm=3.0, frame={"exptime": 10.0}, cfg=defaults("photometry"))
>>> bool(np.allclose(t["flux"], 2e5, rtol=0.01)), info["growth_status"]
(True, 'relaxed')
"""

import logging

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from . import moving, psf
from . import photometry as phot
from . import zeropoint as zpt
from .flags import Flag, any_set

log = logging.getLogger("fieldphot")

#: Columns of the photometry product (targets add ``flux_lim`` and ``detected``).
COLUMNS = [
    "id",
    "target",
    "ra",
    "dec",
    "x",
    "y",
    "r_ap",
    "flux",
    "flux_err",
    "flux_ap",
    "sky",
    "sky_err",
    "snr",
    "peak",
    "mag_inst",
    "mag_inst_err",
    "flux_lim",
    "detected",
    "flags",
    "mag_cat",
    "mag_cat_err",
    "color",
    "contamination",
]


def radii(fwhm: float, cfg: dict) -> tuple[np.ndarray, int, float, float]:
    """The curve-of-growth radii (px, the largest last), the index of the main aperture,
    and the sky annulus.

    Examples
    --------
    >>> from fieldphot.config import defaults
    >>> r, main, r_in, r_out = radii(3.0, defaults("photometry"))
    >>> r.tolist(), main, r_in, r_out
    ([2.0, 2.25, 3.0, 4.5, 6.0, 7.5, 9.0, 12.0], 4, 14.0, 21.0)
    """
    r_min = cfg["min_radius"]
    r_big = max(cfg["apcor_fwhm"] * fwhm, r_min)
    if cfg["mode"] == "fixed":
        r_main = float(cfg["radius_px"])
    else:
        r_main = max(cfg["aperture_fwhm"] * fwhm, r_min)
    r_big = max(r_big, r_main)
    grid = [max(f * fwhm, r_min) for f in cfg["growth_fwhm"]]
    r = np.unique(np.round([*grid, r_main, r_big], 3))
    r = r[r <= r_big]
    r_in, r_out = (max(f * fwhm, r_big + 2) for f in cfg["annulus_fwhm"])
    return r, int(np.flatnonzero(np.isclose(r, round(r_main, 3)))[0]), r_in, max(r_out, r_in + 3)


def _project(wcs, ra, dec, shape, pad: float = 0.0):
    x, y = wcs.world_to_pixel_values(np.asarray(ra, float), np.asarray(dec, float))
    ny, nx = shape
    return x, y, (x >= -pad) & (x <= nx - 1 + pad) & (y >= -pad) & (y <= ny - 1 + pad)


def measure_frame(
    sci,
    err,
    mask,
    wcs,
    ref: pd.DataFrame,
    fwhm,
    frame: dict,
    cfg: dict,
    targets=(),
    avoid_xy=None,
) -> tuple[pd.DataFrame, dict]:
    """Photometry of every reference star inside the frame and of every target.

    Parameters
    ----------
    sci, err, mask : ndarray
        The calibrated frame (e-), its 1-sigma error and bit flags.
    wcs : astropy.wcs.WCS
        The frame's astrometric solution.
    ref : DataFrame
        The star list (``id, ra, dec, mag, mag_err, color``, and ``mag_est`` for sources
        without a catalog magnitude; :func:`fieldphot.stages.starlist`) at the frame's
        epoch.
    fwhm : float
        The frame's FWHM (px); NaN takes ``fwhm_default``.
    frame : dict
        ``exptime`` (s), and for scintillation ``airmass`` and ``site_elev`` (m).
    cfg : dict
        The ``photometry`` config slice.
    targets : list of dict
        Forced positions: ``name``, ``ra``, ``dec`` (deg), and ``index`` (the target's
        place among the config's targets: its id is ``-1 - index``; default its place
        in ``targets``).
    avoid_xy : (array, array), optional
        Detections (px) that blank-sky apertures keep clear of, besides catalog stars.

    Returns
    -------
    table : DataFrame
        :data:`COLUMNS`, plus ``flux_r{j}``/``flux_err_r{j}`` per radius with
        ``keep_apertures``.
    info : dict
        Radii, curve of growth, limiting magnitudes (instrumental), counts.
    """
    shape = sci.shape
    exptime = float(frame["exptime"])
    if fwhm is None or not np.isfinite(fwhm):
        fwhm = cfg["fwhm_default"]
    rad, main, r_in, r_out = radii(fwhm, cfg)
    reach = 40 * fwhm
    x_all, y_all, near = _project(wcs, ref["ra"], ref["dec"], shape, pad=reach)
    x_all, y_all, mag_all = x_all[near], y_all[near], _light_mag(ref)[near]
    ny, nx = shape
    inside = (x_all >= 0) & (x_all <= nx - 1) & (y_all >= 0) & (y_all <= ny - 1)
    stars = ref[near][inside].reset_index(drop=True)
    tg = pd.DataFrame(list(targets), columns=["name", "ra", "dec", "index"])
    tg["index"] = tg["index"].fillna(pd.Series(np.arange(len(tg)), index=tg.index))
    tx, ty, t_in = _project(wcs, tg["ra"], tg["dec"], shape)
    tg, tx, ty = tg[t_in].reset_index(drop=True), tx[t_in], ty[t_in]
    n_star = len(stars)
    det_x, det_y = avoid_xy if avoid_xy is not None else (np.zeros(0), np.zeros(0))
    x = np.concatenate([x_all[inside], tx])
    y = np.concatenate([y_all[inside], ty])
    known_x, known_y = np.concatenate([x_all, det_x]), np.concatenate([y_all, det_y])
    wing = _wing_radius(sci, err, known_x, known_y, fwhm, r_in)
    others = phot.source_mask(shape, known_x, known_y, wing)
    m = phot.multi_aperture(sci, err, mask, x, y, rad, r_in, r_out, others)
    blank = blank_sky(
        sci,
        err,
        mask,
        rad,
        r_in,
        r_out,
        fwhm,
        cfg["blank_apertures"],
        avoid=(known_x, known_y),
        sky_mask=others,
    )
    # Noise that blank-sky apertures show beyond their own error estimate (undetected
    # faint stars, sky structure, correlated noise) is added to every measurement.
    excess = _excess(blank["scatter"], blank["err"])
    f, e = m["flux"], np.sqrt(m["flux_err"] ** 2 + excess)
    # Background variance in each aperture: the error without the source's own photons.
    bvar = np.maximum(e**2 - np.maximum(f, 0.0), 0.0)
    snr_main = np.where(e[:, main] > 0, f[:, main] / e[:, main], 0.0)

    # Curve-of-growth stars are chosen isolated from catalog stars, as bright stars are
    # (the star list's fainter sources change their light by less than the curve's noise,
    # and counting them would leave the curve fewer stars).
    catalogued = np.where(np.isfinite(ref["mag"].to_numpy(float)[near]), mag_all, 99.0)
    cont_big = phot.neighbour_contamination(x_all, y_all, catalogued, fwhm, rad[-1], inside)[inside]
    clean = m["flags"][:n_star, -1] == 0
    growth, rel_err, apcor_err, n_growth, growth_status = _growth(
        f[:n_star], clean, cont_big, snr_main[:n_star], rad, main, cfg
    )

    optimal = cfg["mode"] == "optimal" and growth_status != "none"
    pick, flux, flux_err = _choose(f, e, bvar, growth, rel_err, main, optimal)
    rows = np.arange(len(x))
    flags = m["flags"][rows, pick]
    contamination = np.full(len(x), np.nan)
    contamination[:n_star] = phot.neighbour_contamination(
        x_all, y_all, mag_all, fwhm, _per_star(rad[pick][:n_star], inside), inside
    )[inside]
    detection = _uncatalogued_neighbour(
        x,
        y,
        rad[pick],
        np.concatenate([x_all, tx]),
        np.concatenate([y_all, ty]),
        det_x,
        det_y,
        fwhm,
    )
    psf_info, psf_cols, blended = {}, {}, None
    if cfg["mode"] in ("psf", "subtracted"):
        # The PSF's stars: as the curve of growth's, relaxed until there are enough to
        # follow the PSF over the field (their neighbours are masked).
        usable = np.zeros(len(x), bool)
        tiers = ((1e-3, cfg["apcor_min_snr"]), (1e-2, 30.0), (0.1, 20.0), (0.3, 20.0))
        for max_cont, min_snr in tiers:
            usable[:n_star] = clean & (cont_big < max_cont) & (snr_main[:n_star] > min_snr)
            if usable.sum() >= 120:
                break
        # The PSF's stars see none of their neighbours' light (their own detections are
        # no neighbours).
        neighbours = np.ones(len(known_x), bool)
        neighbours[np.flatnonzero(inside)[usable[:n_star]]] = False
        if usable.any() and len(det_x):
            own = cKDTree(np.c_[x[usable], y[usable]]).query(np.c_[det_x, det_y])[0] < fwhm
            neighbours[len(x_all) :] &= ~own
        crowd = phot.source_mask(
            shape, known_x[neighbours], known_y[neighbours], np.fmin(wing[neighbours], 2 * fwhm)
        )
        # Their large-aperture fluxes, where no catalog star adds light, check the fits.
        check = np.full((2, len(x)), np.nan)
        ok = usable[:n_star] & (cont_big < 1e-2)
        check[:, :n_star][:, ok] = f[:n_star, -1][ok], e[:n_star, -1][ok]
        psf_cols, psf_info, fitted = _psf_fluxes(
            sci, err, mask, others, crowd, x, y, flux, usable, check, (known_x, known_y), fwhm
        )
        if psf_cols:
            flux, flux_err = psf_cols.pop("flux"), psf_cols.pop("flux_err")
            # Apertures on the frame less every neighbour's fitted PSF: the star's own
            # light is measured, not modelled (the PSF's error of its shape stays out).
            fs, es, ee = _subtracted(sci, err, mask, x, y, rad, r_in, r_out, others, fitted)
            # The star list's neighbours are fitted together (or subtracted): they blend
            # no more (a crowded colour frame's zeropoint kept 1 % of its stars). Light
            # of sources the list lacks still does: a detection in the aperture, or light
            # missing from the core once the neighbours' is taken out.
            blended = detection | _spread_light(
                fs, es, growth, main, rad, fwhm, growth_status, cfg["blend_fraction"]
            )
        if psf_cols and cfg["mode"] == "subtracted":
            f, e = fs, np.sqrt(es**2 + excess)
            bvar = np.maximum(e**2 - np.maximum(f, 0.0), 0.0)
            snr_main = np.where(e[:, main] > 0, f[:, main] / e[:, main], 0.0)
            growth, rel_err, apcor_err, n_growth, growth_status = _growth(
                f[:n_star], clean, np.zeros(n_star), snr_main[:n_star], rad, main, cfg
            )
            # Each aperture's share of the star's light from the PSF at its place (the
            # frame's curve of growth misses a PSF that varies), on the total-flux scale.
            share = ee / psf_info["scale"]
            optimal = growth_status != "none"
            fit_err = flux_err
            pick, flux, flux_err = _choose(f, e, bvar, growth, rel_err, main, optimal, share)
            flags = m["flags"][rows, pick]
            # No smaller than the PSF fit's error: the aperture's misses how well the
            # PSF gives each aperture's share and the neighbours' light (pulls near 2).
            flux_err = np.fmax(flux_err, fit_err)
    if blended is None:  # apertures (or no PSF): a neighbour's light in the aperture
        blended = (contamination > cfg["blend_fraction"]) | detection
        blended |= _spread_light(
            f, m["flux_err"], growth, main, rad, fwhm, growth_status, cfg["blend_fraction"]
        )
    flags = flags | np.where(blended, int(Flag.BLENDED), 0).astype(np.int32)
    scint = cfg["scintillation"]
    if scint["enabled"]:
        sigma = phot.scintillation(
            scint["diameter_m"],
            exptime,
            frame.get("airmass") or 1.0,
            scint["altitude_m"] or frame.get("site_elev") or 0.0,
            scint["correction"],
        )
        flux_err = np.hypot(flux_err, np.maximum(flux, 0.0) * sigma)
    snr = np.where(flux_err > 0, flux / flux_err, 0.0)
    flags |= np.where(snr < cfg["min_snr"], int(Flag.LOW_SNR), 0).astype(np.int32)
    mag, merr = zpt.instrumental_mag(flux, flux_err, exptime)
    is_target = np.arange(len(x)) >= n_star
    nsig = cfg["limit_sigma"]
    lim = nsig * np.sqrt(bvar[rows, pick]) / growth[pick]
    out = pd.DataFrame(
        {
            "id": _ids(stars["id"], tg["name"], tg["index"]),
            "target": np.concatenate([np.full(n_star, ""), tg["name"].astype(str)]),
            "ra": np.concatenate([stars["ra"], tg["ra"]]).astype(float),
            "dec": np.concatenate([stars["dec"], tg["dec"]]).astype(float),
            "x": x,
            "y": y,
            "r_ap": rad[pick],
            "flux": flux,
            "flux_err": flux_err,
            "flux_ap": f[rows, pick],
            "sky": m["sky"],
            "sky_err": m["sky_err"],
            "snr": snr,
            "peak": phot.peak_pixel(sci, x, y),
            "mag_inst": mag,
            "mag_inst_err": merr,
            "flux_lim": np.where(is_target, lim, np.nan),
            "detected": ~is_target | (snr >= cfg["detect_snr"]),
            "flags": flags.astype(np.int32),
            "mag_cat": np.concatenate([stars["mag"], np.full(len(tg), np.nan)]).astype(float),
            "mag_cat_err": np.concatenate([stars["mag_err"], np.full(len(tg), np.nan)]),
            "color": np.concatenate([stars["color"], np.full(len(tg), np.nan)]).astype(float),
            "contamination": contamination,
        }
    )
    for c, v in psf_cols.items():
        out[c] = v
    if cfg["keep_apertures"]:
        for j in range(len(rad)):
            out[f"flux_r{j}"] = f[:, j] / growth[j]
            out[f"flux_err_r{j}"] = e[:, j] / growth[j]

    info = {
        "fwhm": float(fwhm),
        "mode": cfg["mode"],
        "radii": rad.tolist(),
        "r_ap": float(rad[main]),
        "r_in": float(r_in),
        "r_out": float(r_out),
        "growth": growth.tolist(),
        "growth_rel_err": rel_err.tolist(),
        "growth_n": n_growth,
        "growth_status": growth_status,
        "apcor": float(1.0 / growth[main]),
        "apcor_err": apcor_err / growth[main],
        "blank_scatter": blank["scatter"].tolist(),
        "blank_err": blank["err"].tolist(),
        "blank_median": blank["median"].tolist(),
        "blank_n": blank["n"],
        "maglim_inst_analytic": _limit_mag(
            analytic_limits(err, mask, rad, growth, r_in, r_out, nsig), main, cfg, exptime
        ),
        # An empty aperture's noise as every measurement reports it (the ERR plane, or the
        # larger blank-sky scatter), and the median offset faint undetected stars give.
        "maglim_inst": _limit_mag(
            phot.limiting_flux(np.fmax(blank["scatter"], blank["err"]) ** 2, nsig, blank["median"])
            / growth,
            main,
            cfg,
            exptime,
        ),
        "limit_sigma": nsig,
        "n_stars": n_star,
        "n_targets": int(len(tg)),
        **({"psf": psf_info} if psf_info else {}),
    }
    return out, info


def _psf_fluxes(sci, err, mask, others, crowd, x, y, total, usable, check, known, fwhm):
    """PSF fluxes (:mod:`fieldphot.psf`) of every position, on the total-flux scale of
    the curve of growth (the median ratio over the PSF's own stars), with the fit's
    columns ``psf_chi2``, ``psf_masked`` and ``psf_group``; nothing (apertures stay) when
    the frame has too few stars for a PSF.

    The PSF is built from the ``usable`` stars with their neighbours' light (``crowd``)
    left out, on the frame less its sep background (sources, ``others``, masked). Every
    star is fitted, then the background is measured again on the frame less every fitted
    star (in a crowded field the first one holds the stars' wings: faint stars came out
    1-2 % faint) and every star fitted again, as DAOPHOT's ALLSTAR does. Each error adds
    the PSF's profile error on the star's own light (the PSF stars' fluxes against their
    large-aperture fluxes, ``check``: flux and error, NaN for others; else their light
    in their fit boxes against the model's, :func:`fieldphot.psf.build`), its pixel error
    on the neighbours' light in its fit region, and the noise PSF fits at blank places of
    the star-subtracted frame show beyond their errors (undetected stars: the ``known``
    sources are avoided).
    """
    bad = any_set(mask, Flag.SATURATED | Flag.BAD_PIXEL | Flag.COSMIC_RAY)
    sub = sci - background(sci, bad, others)
    size = 2 * int(np.ceil(3.0 * fwhm)) + 1
    model, info = psf.build(sub, x[usable], y[usable], fwhm, size, err=err, mask=bad | crowd)
    if model is None:
        why = info.get("reason") or f"{info['n_stars']} stars for a PSF (5 needed)"
        log.warning("PSF photometry: %s: apertures", why)
        return {}, {**info, "status": "none"}, None
    first = psf.fit(sub, err, bad, model, x, y, total, fwhm)
    stars, _ = psf.render(sci.shape, model, x, y, first["flux"], fwhm)
    sub = sci - background(sci - stars, bad)
    if covers_sky(others):
        # The first background held the crowd's wings (:func:`background`) and the PSF
        # built on it lost them (its fluxes 17-21 % below the stars' aperture fluxes on
        # two crowded colour planes, 3 % built again on this one).
        rebuilt, again = psf.build(sub, x[usable], y[usable], fwhm, size, err=err, mask=bad | crowd)
        if rebuilt is not None:
            model, info = rebuilt, again
    f = psf.fit(sub, err, bad, model, x, y, first["flux"], fwhm)
    flux, flux_err = f["flux"].to_numpy(), f["flux_err"].to_numpy()
    light, stamps = psf.render(sci.shape, model, x, y, flux, fwhm)
    measured = psf.profile_error(flux, flux_err, *check)
    profile = measured if np.isfinite(measured) else info["profile_err"]
    blank_var, blank_median, n_blank = psf.blank_noise(sub - light, err, bad, model, fwhm, *known)
    own, neighbours = psf.profile_variance(stamps, light, flux, err, bad, x, y, fwhm)
    var = profile**2 * own + info["pixel_err"] ** 2 * neighbours + blank_var
    flux_err = np.sqrt(flux_err**2 + np.nan_to_num(var))
    ratio = total[usable] / flux[usable]
    scale = float(np.nanmedian(ratio[np.isfinite(ratio) & (ratio > 0)]))
    info.update(
        status="ok",
        scale=scale,
        chi2_median=float(np.nanmedian(f["chi2"])),
        profile_err=float(profile),
        profile_err_source="apertures" if np.isfinite(measured) else "fit boxes",
        blank_noise=float(np.sqrt(blank_var) * scale),
        blank_median=float(blank_median * scale),
        blank_n=n_blank,
    )
    return (
        {
            "flux": flux * scale,
            "flux_err": flux_err * scale,
            "psf_chi2": f["chi2"].to_numpy(),
            "psf_masked": f["masked"].to_numpy(),
            "psf_group": f["group_size"].to_numpy(),
        },
        info,
        {"light": light, "stamps": stamps, "flux": flux, "pixel_err": info["pixel_err"]},
    )


#: The fraction of a frame its sources may cover for sep to measure the background
#: around them (it needs half of a mesh's pixels).
SKY_COVER = 0.5


def background(image, bad, sources=None):
    """The ``image``'s background (sep, 64 px meshes) with the ``bad`` pixels and the
    ``sources`` (optional) left out.

    sep measures a mesh with at least half of its pixels left: where the sources cover
    ``SKY_COVER`` of the frame or more (a crowd) none may be, and sep gives a background of 0
    (seen on the planes of a crowded colour night); the sources then stay in and sep's
    own clipping measures the background under them.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> image = rng.normal(100.0, 5.0, (128, 128)).astype(np.float32)
    >>> bad, crowd = np.zeros(image.shape, bool), np.ones(image.shape, bool)
    >>> round(float(np.median(background(image, bad, crowd))))
    100
    """
    import sep

    out = bad if sources is None or covers_sky(sources) else bad | sources
    return sep.Background(phot.native(image), mask=out, bw=64, bh=64).back()


def covers_sky(sources) -> bool:
    """Whether the ``sources`` (a mask) cover ``SKY_COVER`` of the frame or more: a crowd,
    whose background :func:`background` measures with the sources in.

    Examples
    --------
    >>> covers_sky(np.eye(4, dtype=bool)), covers_sky(np.ones((4, 4), bool))
    (False, True)
    """
    return bool(sources.mean() >= SKY_COVER)


def _subtracted(sci, err, mask, x, y, rad, r_in, r_out, others, fitted):
    """Fluxes and errors in every aperture ``rad`` on the frame less every star's fitted PSF
    (``fitted``: :func:`_psf_fluxes`' model light, per-star stamps, fluxes and pixel
    error), each star's own modelled light added back: the star's light as the frame has
    it, its neighbours' as the PSF models them; the error adds the pixel error of the
    neighbours' light in the aperture; also the share of each star's modelled light
    in each aperture."""
    import sep

    light, stamps, flux = fitted["light"], fitted["stamps"], fitted["flux"]
    m = phot.multi_aperture(sci - light, err, mask, x, y, rad, r_in, r_out, others)
    share = np.zeros(m["flux"].shape)
    for i, (sl, psi) in enumerate(stamps):
        if psi.size:
            cx, cy = np.full(len(rad), x[i] - sl[1].start), np.full(len(rad), y[i] - sl[0].start)
            share[i] = sep.sum_circle(phot.native(psi), cx, cy, rad)[0]
    own = np.nan_to_num(flux)[:, None] * share
    total = np.stack([sep.sum_circle(phot.native(light), x, y, r)[0] for r in rad], axis=1)
    neighbours = fitted["pixel_err"] * (total - own)
    return m["flux"] + own, np.sqrt(m["flux_err"] ** 2 + neighbours**2), share


def _choose(f, e, bvar, growth, rel_err, main: int, optimal: bool, share=None):
    """Each star's aperture (index; the one of highest expected S/N when ``optimal``,
    else ``main``), its total flux (on the curve of ``growth``, or each star's own
    ``share`` of its light in each aperture) and error, from the fluxes ``f`` and errors
    ``e`` in every aperture and their background variance."""
    pick = np.full(len(f), main)
    if optimal:
        pick = phot.best_aperture(f[:, main] / growth[main], growth, bvar)
    rows = np.arange(len(f))
    g = growth[pick] if share is None else share[rows, pick]
    g = np.where(g > 0, g, growth[pick])  # (no share: a star with no pixels of its own)
    flux = f[rows, pick] / g
    return pick, flux, np.hypot(e[rows, pick] / g, flux * rel_err[pick])


def _excess(scatter, err):
    """The variance blank-sky apertures show beyond their own error estimate (0 where
    unknown)."""
    scatter, err = np.asarray(scatter, float), np.asarray(err, float)
    return np.nan_to_num(np.maximum(scatter**2 - err**2, 0.0))


def _growth(f, clean, contamination, snr, rad, main, cfg):
    """Curve of growth from bright, clean, isolated stars, relaxed on sparse frames.

    Returns growth (fraction of the total flux in each aperture, the Moffat-extrapolated
    loss beyond the largest included), the error of each aperture's flux relative to the
    main one's (a frame-wide error of the main aperture's correction is common to all
    stars, so the zeropoint absorbs it), that frame-wide relative error, the stars used,
    and the tier (``measured``, ``relaxed`` or ``none``: no correction).
    """
    tiers = (("measured", 1e-3, cfg["apcor_min_snr"]), ("relaxed", 1e-2, 20.0))
    for status, max_cont, min_snr in tiers:
        usable = clean & (contamination < max_cont) & (snr > min_snr)
        g, ge, n = phot.curve_of_growth(f, usable, ref=main)
        if n >= 3:
            g_big = g / g[-1]
            growth = g_big * phot.moffat_encircled(rad, g_big)
            return growth, ge / g, float(ge[-1] / g[-1]), n, status
    return np.ones(len(rad)), np.zeros(len(rad)), 0.0, 0, "none"


def _uncatalogued_neighbour(x, y, r, known_x, known_y, det_x, det_y, fwhm) -> np.ndarray:
    """True where a detection that is no catalog star or target (more than one FWHM from
    all of them) lies within the aperture radius plus one FWHM."""
    if len(det_x) == 0 or len(x) == 0:
        return np.zeros(len(x), bool)
    det = np.column_stack([det_x, det_y])
    d, _ = cKDTree(np.column_stack([known_x, known_y])).query(det)
    extra = det[d > fwhm]
    if len(extra) == 0:
        return np.zeros(len(x), bool)
    hits = cKDTree(extra).query_ball_point(np.column_stack([x, y]), r + fwhm, return_length=True)
    return np.asarray(hits) > 0


def _spread_light(f, e, growth, main, rad, fwhm, growth_status, fraction, nsigma=3.0):
    """True where the light inside one FWHM falls short of the curve of growth by more than
    ``nsigma`` and by more than ``fraction`` of the expected: a neighbour too faint or close
    to be detected or catalogued adds flux to the aperture but not to its core."""
    core = int(np.argmin(np.abs(rad - fwhm)))
    if growth_status == "none" or core >= main:
        return np.zeros(len(f), bool)
    fs, fm = f[:, core], f[:, main]
    vs, vm = e[:, core] ** 2, e[:, main] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = fs / fm
        # The core is part of the aperture: their errors share the core's variance.
        sigma = np.abs(ratio) * np.sqrt(np.maximum(vs / fs**2 + vm / fm**2 - 2 * vs / (fs * fm), 0))
        expected = growth[core] / growth[main]
        short = ratio - expected < -np.maximum(nsigma * sigma, fraction * expected)
    return np.nan_to_num(short, nan=False).astype(bool) & (fs > 0) & (fm > 0)


def _light_mag(ref: pd.DataFrame) -> np.ndarray:
    """Each star's magnitude for its light on neighbours: the catalog's, else the star
    list's estimate, else too faint to matter."""
    mag = ref["mag"].to_numpy(float)
    if "mag_est" in ref:
        mag = np.where(np.isfinite(mag), mag, ref["mag_est"].to_numpy(float))
    return np.nan_to_num(mag, nan=99.0)


def _ids(star_ids: pd.Series, names: pd.Series, index: pd.Series) -> np.ndarray:
    """Catalog ids, then the targets': ``-1 - index`` beside numeric ids, else the names."""
    if pd.api.types.is_numeric_dtype(star_ids) or len(star_ids) == 0:
        return np.concatenate([star_ids.to_numpy(np.int64), -1 - index.to_numpy(np.int64)])
    return np.concatenate([star_ids.astype(str), "target:" + names.astype(str)])


def _per_star(r_pick, inside):
    """Per-star radii over all projected catalog stars (outside ones get the smallest)."""
    r = np.full(len(inside), float(np.min(r_pick)) if len(r_pick) else 1.0)
    r[np.flatnonzero(inside)] = r_pick
    return r


def _wing_radius(sci, err, x, y, fwhm, r_in, beta=2.5, level=0.3):
    """Per source, the radius where a Moffat profile (index ``beta``; real wings are rarely
    steeper) of the source's peak falls to ``level`` times the pixel noise: the light kept
    out of other stars' sky annuli. Between one FWHM and ``r_in - 1`` (so a star's own
    mask never reaches its own annulus)."""
    ny, nx = sci.shape
    xi = np.clip(np.round(x).astype(int), 0, nx - 1)
    yi = np.clip(np.round(y).astype(int), 0, ny - 1)
    sky = float(np.nanmedian(sci[::4, ::4]))
    noise = float(np.nanmedian(err[::4, ::4]))
    ratio = np.maximum((sci[yi, xi] - sky) / (level * noise), 1.0)
    r = phot.moffat_alpha(fwhm, beta) * np.sqrt(ratio ** (1.0 / beta) - 1.0)
    return np.clip(np.nan_to_num(r), fwhm, max(r_in - 1.0, fwhm))


def blank_sky(sci, err, mask, rad, r_in, r_out, fwhm, n, avoid, sky_mask=None) -> dict:
    """Flux scatter (1.4826 MAD) of blank-sky apertures of every radius, placed away from
    every known source, and their median error estimate from the ERR plane: the empirical
    noise of an aperture measurement (Labbe et al. 2003, AJ 125, 1107).

    Returns ``scatter``, ``err`` and ``median`` (the median flux: below zero where faint
    undetected stars skew the noise; arrays over radii, NaN with fewer than 20 apertures)
    and ``n``.
    """
    bx, by = phot.blank_apertures(
        sci.shape, *avoid, clearance=rad[-1] + 3 * fwhm, margin=r_out + 1, n=n
    )
    scatter, typical, median = (np.full(len(rad), np.nan) for _ in range(3))
    if len(bx) < 20:
        return {"scatter": scatter, "err": typical, "median": median, "n": int(len(bx))}
    b = phot.multi_aperture(sci, err, mask, bx, by, rad, r_in, r_out, sky_mask)
    ok = (b["flags"] & ~int(Flag.NEGATIVE_FLUX)) == 0
    for j in range(len(rad)):
        v = b["flux"][ok[:, j], j]
        if len(v) >= 20:
            median[j] = np.median(v)
            scatter[j] = 1.4826 * np.median(np.abs(v - median[j]))
            typical[j] = np.median(b["flux_err"][ok[:, j], j])
    return {"scatter": scatter, "err": typical, "median": median, "n": int(len(bx))}


def analytic_limits(err, mask, rad, growth, r_in, r_out, nsig):
    """Total flux (e-) measured at ``nsig`` in each aperture from the ERR plane's median
    pixel noise, the sky-estimate error included."""
    area = np.pi * rad**2
    good = ~any_set(mask, Flag.SATURATED | Flag.BAD_PIXEL | Flag.COSMIC_RAY)
    sigma_pix = float(np.median(err[good], overwrite_input=True)) if good.any() else np.nan
    n_sky = np.pi * (r_out**2 - r_in**2)
    return phot.limiting_flux(area * sigma_pix**2 * (1 + area / n_sky), nsig) / growth


def _limit_mag(per_radius, main, cfg, exptime) -> float:
    """Instrumental magnitude of the limiting flux of the main aperture, or in ``optimal``
    mode of the best one."""
    flux = per_radius[main]
    if cfg["mode"] == "optimal":
        ok = np.isfinite(per_radius)
        flux = np.min(per_radius[ok]) if ok.any() else np.nan
    return float(zpt.instrumental_mag([flux], [0.0], exptime)[0][0])


def measure_moving(sci, err, mask, wcs, table: pd.DataFrame, tracks, info: dict, frame, cfg):
    """Photometry of moving targets on one frame (:func:`fieldphot.moving.measure`), as
    rows of :data:`COLUMNS` beside the frame's ``table`` (:func:`measure_frame`, whose
    stars are masked in the targets' sky and judged for crossings) with the frame's
    ``info`` (FWHM, main aperture, curve of growth, annulus).

    ``tracks``: per target ``(name, index, positions)``, ``positions`` the ephemeris
    (:func:`fieldphot.ephemeris.at`) at the exposure's start, middle and end.
    """
    fwhm, r_ap = info["fwhm"], info["r_ap"]
    main = int(np.argmin(np.abs(np.asarray(info["radii"]) - r_ap)))
    growth = info["growth"][main] if info["growth_status"] != "none" else None
    stars = table[table["target"] == ""]
    sx, sy = stars["x"].to_numpy(float), stars["y"].to_numpy(float)
    star_light = (
        sx,
        sy,
        np.nan_to_num(stars["flux"].to_numpy(float)),
        _wing_radius(sci, err, sx, sy, fwhm, info["r_in"]),
    )
    ny, nx = sci.shape
    rows = []
    for name, index, pos in tracks:
        px, py = wcs.world_to_pixel_values(pos["ra"].to_numpy(float), pos["dec"].to_numpy(float))
        if not (-0.5 <= px[1] <= nx - 0.5 and -0.5 <= py[1] <= ny - 0.5):
            continue
        m = moving.measure(
            sci,
            err,
            mask,
            (px[0], py[0]),
            (px[2], py[2]),
            fwhm=fwhm,
            radius=r_ap,
            annulus=(info["r_in"], info["r_out"]),
            growth=growth,
            stars=star_light,
            recenter_px=cfg["recenter_fwhm"] * fwhm,
            detect_snr=cfg["detect_snr"],
            blend_fraction=cfg["blend_fraction"],
        )
        # As every star's: the noise blank-sky apertures show beyond their error (per
        # pixel of aperture) and the curve of growth's error.
        excess = _excess(info["blank_scatter"][main], info["blank_err"][main])
        excess = float(excess) * m["area"] / (np.pi * r_ap**2)
        # The field's stars' light in the aperture is not removed: its estimate is an error.
        m["flux_err"] = np.sqrt(
            (m["flux_err_ap"] ** 2 + excess) / m["fraction"] ** 2
            + (m["flux"] * info["growth_rel_err"][main]) ** 2
            + (m["flux"] * m["contamination"]) ** 2
        )
        m["snr"] = m["flux"] / m["flux_err"] if m["flux_err"] > 0 else 0.0
        ra, dec = wcs.pixel_to_world_values(m["x"], m["y"])
        flags = m["flags"] | (int(Flag.LOW_SNR) if m["snr"] < cfg["min_snr"] else 0)
        mag, merr = zpt.instrumental_mag([m["flux"]], [m["flux_err"]], float(frame["exptime"]))
        # The noise without the source's own photons, as total flux.
        background = np.sqrt(max(m["flux_err_ap"] ** 2 + excess - max(m["flux_ap"], 0.0), 0.0))
        rows.append(
            {
                "id": _ids(stars["id"], pd.Series([name]), pd.Series([index]))[-1],
                "target": name,
                "ra": float(ra),
                "dec": float(dec),
                "x": m["x"],
                "y": m["y"],
                "r_ap": r_ap,
                "flux": m["flux"],
                "flux_err": m["flux_err"],
                "flux_ap": m["flux_ap"],
                "sky": m["sky"],
                "sky_err": m["sky_err"],
                "snr": m["snr"],
                "peak": m["peak"],
                "mag_inst": mag[0],
                "mag_inst_err": merr[0],
                "flux_lim": cfg["limit_sigma"] * background / m["fraction"],
                "detected": m["snr"] >= cfg["detect_snr"],
                "flags": np.int32(flags),
                "mag_cat": np.nan,
                "mag_cat_err": np.nan,
                "color": np.nan,
                "contamination": m["contamination"],
            }
        )
        log.info(
            "%s at (%.1f, %.1f): trail %.1f px, recentred %.2f px, S/N %.1f, stars' light %.3f",
            name, m["x"], m["y"], m["trail_px"], m["shift"], m["snr"], m["contamination"],
        )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)
