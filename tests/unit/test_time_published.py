"""BJD_TDB against a value published by a peer tool, not against fieldphot's own formula.

barycorrpy (Kanodia & Wright 2018, RNAAS 2, 4), whose results its authors checked against
Eastman et al.'s (2010) BJD code, gives in its test suite
(``test_barycorrpy.py::test_JDUTC_BJDTDB``) BJD_TDB = 2458000.00505211 for JD_UTC 2458000
(2017-09-03T12:00:00 UTC), for tau Ceti (HIP 8102) seen from CTIO (lat -30.169283,
lon -70.806789, 2241.9 m). fieldphot's value must agree to better than 0.1 s, from the
function and from a raw header through the manifest (mid-exposure time, site and target
read from the header as a camera writes them).
"""

import numpy as np
from astropy.io import fits

from fieldphot import stages, timeutil

PUBLISHED_BJD_TDB = 2458000.00505211
SITE = (-30.169283, -70.806789, 2241.9)


def tau_ceti_at_2017():
    """Hipparcos position (J2000, ICRS) moved by its proper motion to 2017.67 (30" in RA):
    barycorrpy applies it; 30" moves the light time by about 0.05 s."""
    years = (2458000.0 - 2451545.0) / 365.25
    dec = -15.9395557246 + 854.16e-3 * years / 3600.0
    ra = 26.0213645867 + (-1721.05e-3 * years / 3600.0) / np.cos(np.radians(dec))
    return ra, dec


def test_bjd_tdb_agrees_with_barycorrpy_at_ctio():
    ra, dec = tau_ceti_at_2017()
    bjd = timeutil.bjd_tdb([57999.5], [ra], [dec], *([v] for v in SITE))[0]
    assert abs(bjd - PUBLISHED_BJD_TDB) * 86400.0 < 0.1


def test_bjd_tdb_from_a_raw_header_agrees_with_barycorrpy(tmp_path):
    """A 60 s exposure that starts 30 s before the published instant: its mid-exposure BJD
    in the manifest is the published one."""
    ra, dec = tau_ceti_at_2017()
    h = fits.Header()
    h["IMAGETYP"] = "Light Frame"
    h["DATE-OBS"] = "2017-09-03T11:59:30.000"
    h["EXPTIME"] = 60.0
    h["FILTER"] = "V"
    h["RA"], h["DEC"] = ra, dec
    h["SITELAT"], h["SITELONG"], h["SITEELEV"] = SITE
    raw = tmp_path / "raw" / "tauceti.fits"
    raw.parent.mkdir()
    fits.PrimaryHDU(np.full((64, 64), 1000, np.uint16), h).writeto(raw)
    m = stages.manifest([raw], tmp_path / "manifest.parquet")
    assert abs(m["bjd_tdb"].iloc[0] - PUBLISHED_BJD_TDB) * 86400.0 < 0.1
