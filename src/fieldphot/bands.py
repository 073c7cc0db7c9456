"""Photometric bands: magnitudes in the band and colour a night needs, from the bands a
reference catalog has, with published transformations and AB/Vega offsets.

Sources:

- Gaia G, BP, RP to Johnson-Cousins V, R, I and SDSS g, r, i: Gaia DR3 documentation,
  section 5.5.1, tables 5.8 and 5.9 (the EDR3 relations of Riello et al. 2021, A&A 649, A3):
  ``G - X = sum_k c_k (BP - RP)^k``, each with its colour range and residual scatter.
- SDSS ugriz and Johnson-Cousins BVRI, both ways: Jordi, Grebel & Ammon (2006, A&A 460,
  339), the "all stars" relations of their table 3 (SDSS to BVRI) and table 1 (BV to g).
- AB minus Vega: Blanton & Roweis (2007, AJ 133, 734), table 1.

Examples
--------
>>> import numpy as np
>>> have = {"G": (np.array([15.0]), np.array([0.003])), "BP": (np.array([15.5]), np.array([0.01])),
...         "RP": (np.array([14.4]), np.array([0.01]))}
>>> v, e = derive("V", have)
>>> round(float(v[0]), 3), round(float(e[0]), 3)
(15.253, 0.031)
"""

import numpy as np

#: m_AB - m_Vega (Blanton & Roweis 2007, table 1).
AB_MINUS_VEGA = {
    "U": 0.79, "B": -0.09, "V": 0.02, "R": 0.21, "I": 0.45, "J": 0.91, "H": 1.39, "K": 1.85,
    "u": 0.91, "g": -0.08, "r": 0.16, "i": 0.37, "z": 0.54,
}  # fmt: skip

#: The system each band's catalog magnitudes are on.
SYSTEM = {
    "B": "Vega",
    "V": "Vega",
    "R": "Vega",
    "I": "Vega",
    "G": "Vega",
    "BP": "Vega",
    "RP": "Vega",
    "u": "AB",
    "g": "AB",
    "r": "AB",
    "i": "AB",
    "z": "AB",
    "y": "AB",
}

#: ``G - X`` polynomials in BP - RP: (coefficients c0.., valid colour range, rms scatter).
#: Gaia DR3 documentation section 5.5.1, tables 5.8 (SDSS) and 5.9 (Johnson-Cousins).
GAIA = {
    "V": ((-0.02704, 0.01424, -0.2156, 0.01426), (-0.5, 5.0), 0.03017),
    "R": ((-0.02275, 0.3961, -0.1243, -0.01396, 0.003775), (-0.5, 2.75), 0.03167),
    "I": ((0.01753, 0.76, -0.0991), (-0.5, 2.75), 0.03765),
    "g": ((0.2199, -0.6365, -0.1548, 0.0064), (0.3, 3.0), 0.0745),
    "r": ((-0.09837, 0.08592, 0.1907, -0.1701, 0.02263), (0.0, 3.0), 0.03776),
    "i": ((-0.293, 0.6404, -0.09609, -0.002104), (0.5, 2.0), 0.04092),
}

#: Jordi et al. (2006): X = base + slope * (c1 - c2) + offset, keyed by the band made:
#: (base band, (c1, c2), slope, offset).
JORDI = {
    "B": ("g", ("g", "r"), 0.313, 0.219),
    "V": ("g", ("g", "r"), -0.565, -0.016),
    "R": ("r", ("r", "i"), -0.153, -0.117),
    "I": ("i", ("i", "z"), -0.386, -0.397),
    "g": ("V", ("B", "V"), 0.630, -0.124),
}
#: Adopted scatter (mag) of a Jordi et al. relation for one star: their fits leave
#: residuals of a few hundredths of a magnitude.
JORDI_SCATTER = 0.03

#: Colour indices tried, in order, for the colour term of each band.
COLORS = {
    "B": ["B-V", "g-r", "BP-RP"], "V": ["B-V", "g-r", "BP-RP"],
    "R": ["V-I", "r-i", "BP-RP"], "I": ["V-I", "r-i", "BP-RP"],
    "g": ["g-r", "B-V", "BP-RP"], "r": ["g-r", "r-i", "BP-RP"],
    "i": ["r-i", "i-z", "BP-RP"], "z": ["i-z", "r-i", "BP-RP"],
    "G": ["BP-RP", "B-V", "g-r"],
}  # fmt: skip


def derive(band: str, have: dict):
    """Magnitude and error in ``band`` from the catalog bands in ``have``.

    Parameters
    ----------
    band : str
        Wanted band (``B V R I g r i z`` or any band the catalog has itself).
    have : dict
        Band name -> (magnitudes, errors), arrays of one length.

    Returns
    -------
    (ndarray, ndarray) or None
        NaN outside a relation's colour range; None when no relation applies. Relations
        are not chained: a Jordi et al. relation needs the catalog's own bands.
    """
    if band in have:
        return have[band]
    if band in GAIA and {"G", "BP", "RP"} <= set(have):
        coef, (lo, hi), scatter = GAIA[band]
        g, eg = have["G"]
        c = have["BP"][0] - have["RP"][0]
        ec = np.hypot(have["BP"][1], have["RP"][1])
        poly = np.polynomial.polynomial.polyval(c, coef)
        dpoly = np.polynomial.polynomial.polyval(c, np.polynomial.polynomial.polyder(coef))
        mag = np.where((c >= lo) & (c <= hi), g - poly, np.nan)
        return mag, np.sqrt(eg**2 + (dpoly * ec) ** 2 + scatter**2)
    if band in JORDI and {*JORDI[band][1], JORDI[band][0]} <= set(have):
        base, (c1, c2), slope, offset = JORDI[band]
        (m0, e0), (m1, e1), (m2, e2) = (have[b] for b in (base, c1, c2))
        err = np.sqrt(e0**2 + slope**2 * (e1**2 + e2**2) + JORDI_SCATTER**2)
        return m0 + slope * (m1 - m2) + offset, err
    return None


def color(index: str, have: dict):
    """A colour index such as ``"B-V"`` from the catalog bands (None when not derivable)."""
    b1, b2 = index.split("-")
    p1, p2 = derive(b1, have), derive(b2, have)
    if p1 is None or p2 is None:
        return None
    return p1[0] - p2[0]


def to_system(mag, band: str, system: str):
    """Magnitudes of ``band`` moved from the band's own system to ``system`` (AB or Vega).

    Examples
    --------
    >>> float(to_system(15.0, "V", "AB")), float(to_system(15.0, "r", "Vega"))
    (15.02, 14.84)
    """
    own = SYSTEM.get(band, system)
    if own == system:
        return np.asarray(mag, float)
    if band not in AB_MINUS_VEGA:
        raise ValueError(f"no AB-Vega offset known for band {band!r}")
    sign = 1.0 if system == "AB" else -1.0
    return np.asarray(mag, float) + sign * AB_MINUS_VEGA[band]


#: The standard band each channel of a colour sensor is calibrated against (the AAVSO
#: DSLR photometry guide's choice: its blue, green and red as Johnson B, V and Cousins R,
#: with a colour term).
CHANNEL_BANDS = {"R": "R", "G1": "V", "G2": "V", "G": "V", "B": "B"}


def reference_band(name) -> str:
    """The catalog band a frame taken through FILTER ``name`` is calibrated against: a
    colour sensor's channel's (:data:`CHANNEL_BANDS`), the standard band it names, else
    Gaia G, the broad band nearest an unfiltered CCD (clear, open, luminance, and filters
    no table knows, such as Lowell's VR).

    Examples
    --------
    >>> [reference_band(f) for f in ("Rc", "Clear", "Open", "VR", "G1", "B")]
    ['R', 'G', 'G', 'G', 'V', 'B']
    """
    return CHANNEL_BANDS.get(str(name)) or from_filter(name) or "G"


def from_filter(name) -> str | None:
    """The standard band a FILTER header value names, or None (clear, luminance, unknown).

    Examples
    --------
    >>> [from_filter(f) for f in ("V", "Johnson V", "Rc", "r'", "sdss_g", "Clear")]
    ['V', 'V', 'R', 'r', 'g', None]
    """
    s = str(name or "").strip()
    for token in (s, s.split()[-1] if s.split() else "", s.split("_")[-1]):
        t = token.strip("'").removesuffix("p") if token not in ("BP", "RP") else token
        if t in ("B", "V", "R", "I", "u", "g", "r", "i", "z"):
            return t
        if t in ("Rc", "RC", "Ic", "IC", "R_c", "I_c"):
            return t[0].upper()
    return None
