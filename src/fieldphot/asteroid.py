"""A moving target's light curve as asteroid observers use it: light-time-corrected
times, reduced magnitudes, the rotation period from a Fourier series (Harris et al. 1989,
Icarus 77, 171) with its amplitude, and the Minor Planet Center's ALCDEF format.

Examples
--------
>>> import numpy as np
>>> t = np.linspace(0.0, 0.3, 120)
>>> mag = 15 + 0.15 * np.cos(4 * np.pi * t / 0.125) + 0.02 * np.cos(2 * np.pi * t / 0.125 + 1)
>>> p = rotation_period(t, mag, np.full(t.size, 0.005), period_range_h=(1.0, 24.0))
>>> round(p["period_h"], 2), round(p["amplitude"], 2), p["n_peaks"]
(3.0, 0.33, 2)
"""

import numpy as np
import pandas as pd

#: Light time per astronomical unit, days (1 au / c = 499.004784 s).
LIGHT_DAYS_PER_AU = 499.004784 / 86400.0

#: ALCDEF metadata keywords every session block must carry (ALCDEF standard; the
#: conditional LTCDAYS and UCORMAG are written whenever their switch is).
ALCDEF_REQUIRED = (
    "REVISEDDATA",
    "OBJECTNUMBER",
    "OBJECTNAME",
    "ALLOWSHARING",
    "MPCDESIG",
    "CONTACTNAME",
    "CONTACTINFO",
    "OBSERVERS",
    "OBSLONGITUDE",
    "OBSLATITUDE",
    "SESSIONDATE",
    "SESSIONTIME",
    "FILTER",
    "MAGBAND",
    "LTCAPP",
    "LTCDAYS",
    "LTCTYPE",
    "REDUCEDMAGS",
    "UCORMAG",
    "DIFFERMAGS",
    "STANDARD",
    "DELIMITER",
)


def light_time(delta_au) -> np.ndarray:
    """Light travel time (days) over ``delta_au``: subtract it from the observed time to
    get the time the light left the target."""
    return np.asarray(delta_au, float) * LIGHT_DAYS_PER_AU


def reduced_mag(mag, r_au, delta_au) -> np.ndarray:
    """The magnitude at unit distances from the Sun and the observer: ``mag - 5 log10(r
    Delta)``."""
    return np.asarray(mag, float) - 5 * np.log10(
        np.asarray(r_au, float) * np.asarray(delta_au, float)
    )


def _design(t, period, order):
    w = 2 * np.pi * np.outer(t, np.arange(1, order + 1)) / period
    return np.column_stack([np.ones(len(t)), np.cos(w), np.sin(w)])


def _fit(t, mag, weight, period, order):
    a = _design(t, period, order) * weight[:, None]
    coef, *_ = np.linalg.lstsq(a, mag * weight, rcond=None)
    chi2 = float(np.sum((a @ coef - mag * weight) ** 2))
    return coef, chi2, a


def _peaks(coef, period, order) -> tuple[int, float, np.ndarray, np.ndarray]:
    """Maxima of brightness (minima of magnitude) per cycle, the peak-to-peak amplitude,
    and the curve over one cycle."""
    phase = np.linspace(0, 1, 400, endpoint=False)
    curve = _design(phase * period, period, order) @ coef
    lower = (curve < np.roll(curve, 1)) & (curve < np.roll(curve, -1))
    # A brightness maximum counts when it stands out by a tenth of the amplitude.
    amp = float(np.ptp(curve))
    n = 0
    for i in np.flatnonzero(lower):
        right = curve[(i + np.arange(1, 200)) % 400]
        left = curve[(i - np.arange(1, 200)) % 400]
        rise = min(right[: np.argmax(right) + 1].max(), left[: np.argmax(left) + 1].max())
        n += rise - curve[i] > 0.1 * amp
    return max(n, 1), amp, phase, curve


def rotation_period(t, mag, err, period_range_h=(1.0, 48.0), order: int = 4) -> dict:
    """The rotation period of an asteroid light curve, as the lightcurve community finds
    it: a Fourier series of ``order`` harmonics fitted at every trial period, the best
    (least chi-square) kept, halved while the half fits as well (an F test at 1 %), and
    doubled when its curve has a single maximum per cycle (the usual double-peaked
    convention for an elongated body).

    Parameters
    ----------
    t, mag, err : array
        Times (days; light-time corrected), magnitudes and their errors.
    period_range_h : (float, float)
        Periods searched (hours); those longer than the data's span are not searched
        (but a single-peaked best period may double beyond it).
    order : int
        Harmonics of the series.

    Returns
    -------
    dict
        ``period_h``, ``period_err_h``, ``amplitude`` (peak to peak, mag),
        ``amplitude_err``, ``n_peaks``, ``chi2_red``, ``n_points``, ``t0`` (the
        phase's zero), and ``phase``/``model`` (the fitted curve over one cycle).
    """
    from scipy import stats

    t, mag, err = (np.asarray(a, float) for a in (t, mag, err))
    ok = np.isfinite(t) & np.isfinite(mag) & np.isfinite(err) & (err > 0)
    t, mag, err = t[ok], mag[ok], err[ok]
    n_par = 2 * order + 1
    empty = {"period_h": np.nan, "period_err_h": np.nan, "amplitude": np.nan,
             "amplitude_err": np.nan, "n_peaks": 0, "chi2_red": np.nan, "n_points": int(len(t)),
             "t0": np.nan, "phase": [], "model": []}  # fmt: skip
    if len(t) < n_par + 5:
        return empty
    t0 = float(t.min())
    x, w = t - t0, 1.0 / err
    span = float(np.ptp(x))
    p_lo = period_range_h[0] / 24
    p_hi = min(period_range_h[1] / 24, span)  # a period needs one whole cycle
    if p_hi <= p_lo:
        return empty
    df = 1.0 / (20 * span)  # a twentieth of a cycle's phase drift over the span
    freqs = np.arange(1 / p_hi, 1 / p_lo + df, df)
    chi2 = np.array([_fit(x, mag, w, 1 / f, order)[1] for f in freqs])
    best = int(np.argmin(chi2))
    # Refine on a grid ten times finer around the best trial frequency.
    fine = np.linspace(freqs[max(best - 1, 0)], freqs[min(best + 1, len(freqs) - 1)], 41)
    c_fine = np.array([_fit(x, mag, w, 1 / f, order)[1] for f in fine])
    f_best, c_best = fine[int(np.argmin(c_fine))], float(c_fine.min())
    dof = len(x) - n_par - 1

    def chi2_at(f):
        return _fit(x, mag, w, 1 / f, order)[1]

    while 2 * f_best <= 1 / p_lo:  # the half period fits as well: the curve repeats
        f_half = 2 * f_best
        c_half = min(chi2_at(f_half * (1 + k * 1e-3)) for k in range(-5, 6))
        if stats.f.sf((c_half - c_best) / n_par / (c_best / dof), n_par, dof) > 0.01:
            f_best, c_best = f_half, c_half
        else:
            break
    coef, c_best, a = _fit(x, mag, w, 1 / f_best, order)
    n_peaks, amp, phase, curve = _peaks(coef, 1 / f_best, order)
    if n_peaks == 1 and 0.5 * f_best >= 24 / period_range_h[1]:
        f_best /= 2
        coef, c_best, a = _fit(x, mag, w, 1 / f_best, order)
        n_peaks, amp, phase, curve = _peaks(coef, 1 / f_best, order)
    chi2_red = c_best / dof
    # The period's error: where chi-square (scaled to a reduced 1) rises by one.
    h = df / 10
    curv = (chi2_at(f_best + h) - 2 * c_best + chi2_at(f_best - h)) / h**2
    sigma_f = np.sqrt(2 * max(chi2_red, 1.0) / curv) if curv > 0 else np.nan
    cov = np.linalg.pinv(a.T @ a) * max(chi2_red, 1.0)
    draws = np.random.default_rng(0).multivariate_normal(coef, cov, 200)
    amps = [np.ptp(_design(phase / f_best, 1 / f_best, order) @ d) for d in draws]
    return {
        "period_h": float(24 / f_best),
        "period_err_h": float(24 * sigma_f / f_best**2),
        "amplitude": amp,
        "amplitude_err": float(np.std(amps)),
        "n_peaks": int(n_peaks),
        "chi2_red": float(chi2_red),
        "n_points": int(len(x)),
        "t0": t0,
        "phase": phase.tolist(),
        "model": curve.tolist(),
    }


def alcdef(sessions, meta: dict) -> str:
    """An ALCDEF file: one metadata block and data block per session.

    Parameters
    ----------
    sessions : list of DataFrame
        Per session (night): ``jd`` (UTC mid-exposure, light-time corrected where
        ``ltc``), ``mag``, ``mag_err``, ``airmass``, and the session's ephemeris columns
        ``ra``, ``dec``, ``phase``, ``pab_lon``, ``pab_lat``, ``ltc`` (days, may be NaN).
    meta : dict
        ``name``, ``number``, ``observers``, ``lon``, ``lat`` (deg), ``filter``,
        ``band``, ``differential`` (bool: magnitudes relative to the ensemble, not
        calibrated), ``standard`` (``TRANSFORMED``, ``INTERNAL`` or ``NONE``).

    Examples
    --------
    >>> s = pd.DataFrame({"jd": [2460384.6, 2460384.61], "mag": [15.1, 15.2],
    ...                   "mag_err": [0.01, 0.01], "airmass": [1.1, 1.12], "ra": 150.0,
    ...                   "dec": 20.0, "phase": 12.0, "pab_lon": 140.0, "pab_lat": 2.0,
    ...                   "ltc": 0.007})
    >>> text = alcdef([s], {"name": "Rock", "number": 1234, "observers": "A. Observer",
    ...                     "lon": -111.6, "lat": 31.96, "filter": "V", "band": "V",
    ...                     "differential": False, "standard": "INTERNAL"})
    >>> alcdef_missing(text), text.splitlines()[-2]
    ([], 'DATA=2460384.610000|15.200|0.010|1.120')
    """
    from astropy.time import Time

    lines = []
    for s in sessions:
        mid = float(np.mean(s["jd"]))
        when = Time(mid, format="jd", scale="utc").isot
        ltc = s["ltc"].to_numpy(float) if "ltc" in s else np.full(len(s), np.nan)
        applied = bool(np.isfinite(ltc).all())
        ra, dec = float(np.mean(s["ra"])), float(np.mean(s["dec"]))

        number = meta.get("number")
        lines += [
            "STARTMETADATA",
            "REVISEDDATA=FALSE",
            f"OBJECTNUMBER={int(number) if str(number or '').isdigit() else 0}",
            f"OBJECTNAME={meta['name']}",
            "ALLOWSHARING=TRUE",
            f"MPCDESIG={meta.get('designation') or meta['name']}",
            f"CONTACTNAME={meta.get('observers') or 'unknown'}",
            "CONTACTINFO=[]",
            f"OBSERVERS={meta.get('observers') or 'unknown'}",
            f"OBSLONGITUDE={meta.get('lon') or 0.0:+.4f}",
            f"OBSLATITUDE={meta.get('lat') or 0.0:+.4f}",
            f"SESSIONDATE={when[:10]}",
            f"SESSIONTIME={when[11:19]}",
            f"FILTER={meta['filter']}",
            f"MAGBAND={meta['band']}",
            f"LTCAPP={'AUTO' if applied else 'NONE'}",
            f"LTCDAYS={-ltc[0] if applied else 0.0:+.6f}",
            f"LTCTYPE={'LIGHTTIME' if applied else 'NONE'}",
            "REDUCEDMAGS=NONE",
            "UCORMAG=0.000",
            f"DIFFERMAGS={'TRUE' if meta['differential'] else 'FALSE'}",
            f"STANDARD={meta['standard']}",
            f"OBJECTRA={_sexagesimal(ra / 15)}",
            f"OBJECTDEC={_sexagesimal(dec, sign=True)}",
            "EQUINOX=J2000.0",
            f"PHASE={_mean(s, 'phase', '+.2f')}",
            f"PABL={_mean(s, 'pab_lon', '.1f')}",
            f"PABB={_mean(s, 'pab_lat', '+.1f')}",
            "DELIMITER=PIPE",
            "ENDMETADATA",
        ]
        for r in s.itertuples():
            airmass = r.airmass if np.isfinite(r.airmass) else 0.0
            lines.append(f"DATA={r.jd:.6f}|{r.mag:.3f}|{r.mag_err:.3f}|{airmass:.3f}")
        lines.append("ENDDATA")
    return "\n".join(lines) + "\n"


def _mean(s: pd.DataFrame, col: str, fmt: str) -> str:
    """A session's mean of a column, formatted (0.0 where it has none)."""
    v = float(np.nanmean(s[col])) if col in s and np.isfinite(s[col]).any() else np.nan
    return format(v, fmt) if np.isfinite(v) else "0.0"


def _sexagesimal(value: float, sign: bool = False) -> str:
    s = "-" if value < 0 else "+"
    v = abs(value)
    d, m = int(v), int((v % 1) * 60)
    sec = ((v % 1) * 60 % 1) * 60
    return f"{s if sign else ''}{d:02d}:{m:02d}:{sec:04.1f}"


def alcdef_missing(text: str) -> list[str]:
    """The required ALCDEF keywords (:data:`ALCDEF_REQUIRED`) a file's session blocks lack,
    and any block or data line out of place: empty for a valid file."""
    problems, block, state = [], set(), "out"
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "STARTMETADATA" and state == "out":
            state, block = "meta", set()
        elif key == "ENDMETADATA" and state == "meta":
            problems += [k for k in ALCDEF_REQUIRED if k not in block]
            state = "data"
        elif key == "DATA" and state == "data":
            if len(line.split("=", 1)[1].split("|")) < 3:
                problems.append(f"bad data line {line!r}")
        elif key == "ENDDATA" and state == "data":
            state = "out"
        elif state == "meta":
            block.add(key)
        elif line.strip():
            problems.append(f"{key} out of place")
    return problems + (["unterminated block"] if state != "out" else [])


def phased_figure(t, mag, err, flagged, fit: dict, title: str):
    """The light curve folded on the rotation period with the Fourier series (flagged
    points hollow)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    if np.isfinite(fit.get("period_h", np.nan)):
        period = fit["period_h"] / 24
        phase = ((np.asarray(t) - fit["t0"]) / period) % 1
        for bad, style in ((False, {"fmt": "o"}), (True, {"fmt": "o", "mfc": "none"})):
            sel = np.asarray(flagged) == bad
            ax.errorbar(phase[sel], np.asarray(mag)[sel], np.asarray(err)[sel], ms=3, lw=0.5,
                        alpha=0.8, label="star in aperture" if bad and sel.any() else None,
                        **style)  # fmt: skip
        ax.plot(fit["phase"], fit["model"], "k-", lw=1)
        ax.set_title(
            f"{title}: P = {fit['period_h']:.4f} +- {fit['period_err_h']:.4f} h, "
            f"amplitude {fit['amplitude']:.3f} +- {fit['amplitude_err']:.3f} mag",
            fontsize=9,
        )
        ax.set_xlabel("rotation phase")
        if np.asarray(flagged).any():
            ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"{title}: too few points for a period", ha="center")
    ax.invert_yaxis()
    ax.set_ylabel("magnitude")
    return fig
