"""Where a night's detector stops being linear, measured from its own stars.

Many cameras respond non-linearly well below the level where they saturate (on the
Lowell 42-inch night of issue 19, stars whose highest pixel reached half the saturation
level scattered 1.4 times their expected noise, 2.7 times above 0.85 of it). The error
depends on how the star's light falls on the pixels, so it follows the seeing and no
error model absorbs it. The night shows it: constant stars' pulls (offset from their
own mean over their error) grow with the highest pixel of the star. :func:`onset` finds
the lowest level from which they do; the light-curve step flags the points above it
``NONLINEAR`` and fits the ensemble again without them.

Examples
--------
>>> rng = np.random.default_rng(1)
>>> fraction = rng.uniform(0, 1, 20000)
>>> pull = rng.normal(0, np.where(fraction > 0.6, 2.0, 1.0))
>>> float(onset(fraction, pull))
0.6
>>> print(onset(fraction, rng.normal(0, 1, 20000)))
None
"""

import numpy as np
from scipy import stats


def onset(
    fraction,
    pull,
    *,
    start: float = 0.2,
    step: float = 0.05,
    factor: float = 1.25,
    min_points: int = 30,
    p_value: float = 1e-3,
    clip: float = 8.0,
):
    """The lowest peak level (a fraction of the saturation level) from which constant
    stars' pulls scatter ``factor`` times those of the stars below ``start`` (or
    ``factor`` times their errors, when those stars scatter less than theirs).

    Parameters
    ----------
    fraction, pull : array
        Per point of constant stars: its highest pixel over the saturation level, and
        its pull (offset from the star's mean over its error).
    start, step
        Candidate levels run from ``start`` up in ``step``; the pulls of the points
        within ``step`` above a level (or all above it, when those are fewer than
        ``min_points``) are compared with the pulls below ``start``.
    factor, min_points, p_value
        A level is in excess when those pulls' rms exceeds ``factor`` times the
        reference rms, and the excess is significant (chi-square, ``p_value``).
    clip
        Pulls beyond ``clip`` reference rms (a missed cosmic ray, a satellite) are left
        out of both.

    Returns
    -------
    float or None
        The lowest level in excess with every level above it in excess too; None when
        none is, or when fewer than ``3 * min_points`` points lie below ``start``.
    """
    fraction, pull = np.asarray(fraction, float), np.asarray(pull, float)
    ok = np.isfinite(fraction) & np.isfinite(pull)
    fraction, pull = fraction[ok], pull[ok]
    low = fraction < start
    if low.sum() < 3 * min_points:
        return None
    # Pulls below 1 (faint stars' errors a little high) are no licence to flag stars
    # whose scatter their errors explain.
    ref = max(float(np.sqrt(np.mean(pull[low] ** 2))), 1.0)
    z = pull / ref
    keep = np.abs(z) < clip
    fraction, z = fraction[keep], z[keep]
    levels = np.round(np.arange(start, 1.0, step), 6)
    excess = []
    for level in levels:
        window = (fraction >= level) & (fraction < level + step)
        if window.sum() < min_points:
            window = fraction >= level
        n = int(window.sum())
        if n < min_points:
            excess.append(None)  # no evidence either way
            continue
        chi2 = float(np.sum(z[window] ** 2))
        excess.append(bool(chi2 / n > factor**2 and stats.chi2.sf(chi2, n) < p_value))
    found = None
    for level, e in zip(levels[::-1], excess[::-1], strict=True):
        if e is False:
            break
        if e:
            found = float(level)
    return found
