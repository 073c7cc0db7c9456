"""A transit model fitted to a target's relative flux: mid-time and depth with their errors,
as EXOTIC and AstroImageJ users read them off their nights.

The model is batman's (Kreidberg 2015) limb-darkened transit of a circular orbit, times a
linear baseline in time. One night sees one transit, so the shape is free (radius ratio,
impact parameter, scaled semi-major axis) beside the mid-time; the period, when known,
only names the orbit (without it a 3-day orbit stands in: on one transit the period and
the scaled semi-major axis are one parameter). Limb darkening is fixed (quadratic, a
Sun-like star in the optical by default; ``targets[].limb_darkening`` sets it).

Examples
--------
>>> rng = np.random.default_rng(5)
>>> t = np.linspace(-0.12, 0.12, 300)
>>> truth = model(t, t0=0.004, rp=0.15, b=0.3, a=12.0, period=3.0)
>>> f = truth * (1 + 0.001 * t) + rng.normal(0, 0.002, t.size)
>>> r = fit(t, f, np.full(t.size, 0.002), t0=0.0, duration_d=0.09)
>>> bool(abs(r["t0"] - 0.004) < 3 * r["t0_err"])
True
>>> bool(abs(r["depth"] - 0.15**2) < 3 * r["depth_err"])
True
"""

import numpy as np
from scipy import optimize

#: Quadratic limb darkening of a Sun-like star in V/R (Claret 2000 tables, roughly).
LIMB_DARKENING = (0.40, 0.26)


def model(t, *, t0, rp, b, a, period=3.0, u=LIMB_DARKENING) -> np.ndarray:
    """Relative flux of a transit at times ``t`` (days): radius ratio ``rp``, impact
    parameter ``b``, semi-major axis ``a`` in stellar radii, circular orbit."""
    import batman

    p = batman.TransitParams()
    p.t0, p.per, p.rp, p.a = t0, period, rp, a
    p.inc = float(np.degrees(np.arccos(min(b / a, 1.0))))
    p.ecc, p.w, p.u, p.limb_dark = 0.0, 90.0, list(u), "quadratic"
    return batman.TransitModel(p, np.asarray(t, float)).light_curve(p)


def fit(t, flux, err, *, t0, duration_d, period_d=None, u=LIMB_DARKENING) -> dict:
    """Least-squares transit fit to relative flux ``flux`` ± ``err`` at BJD ``t``.

    Parameters
    ----------
    t, flux, err : array
        Times (days), relative flux and its 1-sigma error.
    t0, duration_d : float
        The ephemeris' mid-time and the transit's duration (days): the start.
    period_d : float, optional
        The orbital period (days), when known.
    u : (float, float)
        Quadratic limb-darkening coefficients.

    Returns
    -------
    dict
        ``t0`` and ``t0_err`` (days), ``depth`` ((Rp/R*)², as EXOTIC and AstroImageJ
        report it) and ``depth_err``, ``rp``, ``b``, ``a``, ``chi2_red``, ``n``, and ``model`` (a
        function of time: the fitted transit with its baseline). Errors are the fit's
        covariance scaled by the reduced chi-square when it exceeds 1.
    """
    t, flux, err = (np.asarray(v, float) for v in (t, flux, err))
    ok = np.isfinite(t) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    t, flux, err = t[ok], flux[ok], err[ok]
    period = float(period_d) if period_d else 3.0
    tm = float(np.median(t))
    b0, rp0 = 0.3, np.sqrt(max(1.0 - np.percentile(flux, 5) / np.median(flux), 1e-4))
    a0 = period / (np.pi * duration_d) * np.sqrt((1 + rp0) ** 2 - b0**2)

    def curve(p, times):
        t0_, rp, b, a, c0, c1 = p
        shape = model(times, t0=t0_, rp=rp, b=b, a=a, period=period, u=u)
        return shape * (c0 + c1 * (times - tm))

    def resid(p):
        return (flux - curve(p, t)) / err

    start = [t0, rp0, b0, max(a0, 1.6), float(np.median(flux)), 0.0]
    lo = [t0 - duration_d / 2, 1e-3, 0.0, 1.5, 0.5, -np.inf]
    hi = [t0 + duration_d / 2, 0.5, 1.2, 500.0, 1.5, np.inf]
    res = optimize.least_squares(resid, start, bounds=(lo, hi), x_scale="jac")
    n_par = len(start)
    chi2_red = float(np.sum(res.fun**2) / max(len(t) - n_par, 1))
    cov = np.linalg.pinv(res.jac.T @ res.jac) * max(chi2_red, 1.0)
    p = res.x

    return {
        "t0": float(p[0]),
        "t0_err": float(np.sqrt(cov[0, 0])),
        "depth": float(p[1] ** 2),
        "depth_err": float(2 * p[1] * np.sqrt(cov[1, 1])),
        "rp": float(p[1]),
        "b": float(p[2]),
        "a": float(p[3]),
        "chi2_red": chi2_red,
        "n": int(len(t)),
        "model": lambda times: curve(p, np.asarray(times, float)),
    }
