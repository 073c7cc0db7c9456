"""Variability statistics of one light curve: indices and periodograms.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> t = np.sort(rng.uniform(0, 1.0, 300))
>>> m = 12 + 0.05 * np.sin(2 * np.pi * t / 0.13) + rng.normal(0, 0.005, t.size)
>>> e = np.full(t.size, 0.005)
>>> s = statistics(t, m, e)
>>> round(s["ls_period"], 3), s["stetson_j"] > 1, s["von_neumann"] < 1
(0.13, True, True)
"""

import numpy as np
from astropy.timeseries import BoxLeastSquares, LombScargle

#: Box durations (days) tried by BLS: 30 min to 6 h, those shorter than a third of the baseline.
BLS_DURATIONS = np.array([0.02, 0.04, 0.08, 0.16, 0.25])


def stetson_j(m, e) -> float:
    """Stetson's (1996) J index over consecutive pairs of points: about 0 for noise,
    positive when neighbouring points deviate together (time-ordered input).

    Examples
    --------
    >>> round(stetson_j(np.array([1.0, 1.0, 2.0, 2.0]), np.full(4, 0.1)), 2)
    1.92
    """
    n = len(m)
    if n < 2:
        return np.nan
    w = 1 / e**2
    delta = np.sqrt(n / (n - 1)) * (m - np.sum(w * m) / np.sum(w)) / e
    p = delta[:-1] * delta[1:]
    return float(np.mean(np.sign(p) * np.sqrt(np.abs(p))))


def von_neumann(m) -> float:
    """Von Neumann ratio: mean square successive difference over the variance; about 2
    for white noise, small for smooth variability (time-ordered input).

    Examples
    --------
    >>> von_neumann(np.array([1.0, 2.0, 3.0, 4.0]))
    0.6
    """
    if len(m) < 3:
        return np.nan
    return float(np.mean(np.diff(m) ** 2) / np.var(m, ddof=1))


def _frequency_grid(t, f_max: float, per_peak: float, max_frequencies: int) -> np.ndarray:
    """Uniform trial frequencies from one cycle over the baseline to ``f_max`` (1/day),
    ``per_peak`` per peak width (1/baseline), at most ``max_frequencies``."""
    base = np.ptp(t)
    f_min = 1 / base
    if f_max <= f_min:
        return np.array([f_min])
    n = int(min(max_frequencies, max(10, per_peak * base * (f_max - f_min))))
    return np.linspace(f_min, f_max, n)


def statistics(
    t, m, e, *, min_period: float = 0.01, max_frequencies: int = 10000, bls: bool = True
) -> dict:
    """Indices and the best periods of one light curve (time-sorted, good points only).

    Parameters
    ----------
    t, m, e : arrays
        Time (days), magnitude and error.
    min_period : float
        Shortest period searched (days; never below twice the median cadence).
    max_frequencies : int
        Most trial frequencies of each periodogram. Lomb-Scargle steps a tenth of a peak's
        width (1/baseline) and refines its best peak; BLS steps by the shortest box over
        the baseline squared (astropy's ``autoperiod`` rule).
    bls : bool
        Also run box-least-squares (transit search; a period over the baseline stands
        for a single event).

    Returns
    -------
    dict
        ``stetson_j``, ``von_neumann``, ``ls_period``, ``ls_power`` (Lomb-Scargle,
        standard normalization), ``bls_period`` (days), ``bls_t0``, ``bls_duration``,
        ``bls_depth`` (fractional flux), ``bls_snr`` (depth over its error); NaN where
        there are too few points.
    """
    out = dict.fromkeys(
        ("ls_period", "ls_power", "bls_period", "bls_t0", "bls_duration", "bls_depth", "bls_snr"),
        np.nan,
    )
    out.update(stetson_j=stetson_j(m, e), von_neumann=von_neumann(m))
    if len(t) < 10 or np.ptp(t) <= 0:
        return out
    base = np.ptp(t)
    dt = np.median(np.diff(t))
    f_max = 1 / max(min_period, 2 * dt)
    freq = _frequency_grid(t, f_max, 10, max_frequencies)
    ls = LombScargle(t, m, e)
    k = int(np.nanargmax(ls.power(freq, assume_regular_frequency=True)))
    # Refine around the best peak.
    step = freq[1] - freq[0] if len(freq) > 1 else freq[0] / 10
    fine = np.linspace(max(freq[k] - step, freq[0] / 2), freq[k] + step, 41)
    fp = ls.power(fine)
    j = int(np.nanargmax(fp))
    out.update(ls_period=float(1 / fine[j]), ls_power=float(fp[j]))
    durations = BLS_DURATIONS[BLS_DURATIONS < base / 3]
    if bls and len(durations):
        flux = 10 ** (-0.4 * (m - np.median(m)))
        model = BoxLeastSquares(t, flux, flux * e / 1.0857)
        f_box = 1 / max(3 * durations.min(), min_period)
        per_peak = base / durations.min()  # step: shortest duration / baseline^2
        f = _frequency_grid(t, f_box, per_peak, max_frequencies)
        periods = np.sort(np.append(1 / f, 1.5 * base))  # the last: a single event
        res = model.power(periods, durations[durations < periods.min()], objective="snr")
        k = int(np.nanargmax(res.power))
        out.update(
            bls_period=float(res.period[k]),
            bls_t0=float(res.transit_time[k]),
            bls_duration=float(res.duration[k]),
            bls_depth=float(res.depth[k]),
            bls_snr=float(res.depth_snr[k]),
        )
    return out
