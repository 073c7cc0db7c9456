"""Bit flags shared by every stage.

Pixel masks (the MASK extension of calibrated frames) and per-measurement flags use
the same bits, so a flag travels from a pixel to every measurement that touches it.
Flags accumulate with ``|``; nothing is silently dropped.

Examples
--------
>>> from fieldphot.flags import Flag
>>> f = Flag.SATURATED | Flag.EDGE
>>> Flag.SATURATED in f
True
>>> describe(int(f))
'SATURATED|EDGE'
"""

from enum import IntFlag

import numpy as np


class Flag(IntFlag):
    """Quality bits for pixels, sources, measurements and frames."""

    SATURATED = 1  #: pixel at or above the saturation level (judged in raw ADU)
    BAD_PIXEL = 2  #: hot, dead or otherwise unusable pixel (from the masters)
    COSMIC_RAY = 4  #: pixel hit by a cosmic ray (replaced by an interpolation)
    EDGE = 8  #: aperture or annulus reaches outside the frame
    BLENDED = 16  #: neighbour inside the aperture
    NO_WCS = 32  #: the frame has no astrometric solution
    LOW_SNR = 64  #: signal-to-noise below the configured threshold
    NONLINEAR = 128  #: pixel above the non-linearity level
    NO_CALIBRATION = 256  #: a calibration master was missing for this frame
    NEGATIVE_FLUX = 512  #: sky-subtracted flux at or below zero
    NO_ZEROPOINT = 1024  #: the frame has no photometric zeropoint
    MASKED = 2048  #: masked pixels inside the aperture
    NO_DATA = 4096  #: no measurement of this star on this frame (outside it, or the frame failed)
    POOR_FRAME = 8192  #: the frame's ensemble scatter is far above its night's (clouds, bright sky)
    STAR_CROSSING = 16384  #: a moving target's aperture holds light of a star of the field


def describe(value: int) -> str:
    """Names of the bits set in ``value``, joined by ``|`` (empty string for 0).

    Examples
    --------
    >>> describe(0)
    ''
    >>> describe(Flag.COSMIC_RAY | Flag.BAD_PIXEL)
    'BAD_PIXEL|COSMIC_RAY'
    """
    return "|".join(f.name for f in Flag if int(value) & f)


def any_set(mask: np.ndarray, bits: int) -> np.ndarray:
    """Boolean array: which elements of an integer ``mask`` have any of ``bits`` set.

    Examples
    --------
    >>> import numpy as np
    >>> any_set(np.array([0, 1, 4]), Flag.SATURATED | Flag.COSMIC_RAY).tolist()
    [False, True, True]
    """
    return (np.asarray(mask) & int(bits)) != 0
