"""Field simulator: a raw night as an observatory writes it, with the truth beside it.

:func:`simulate_night` writes bias, dark, flat and science frames of one field
(``raw/``), a reference catalog with magnitudes in two bands (``refcat.parquet``), a
ready-to-run config (``config.yaml``) and the truth (``truth/``): every star's
position, flux and magnitude on every frame, and each frame's zeropoint, airmass,
FWHM and times.

The pixels follow the physics of a CCD: stars with a Moffat PSF whose FWHM changes from
frame to frame, sky, dark current and hot pixels, vignetting and pixel-to-pixel
response, atmospheric extinction with airmass and thin-cloud transparency changes,
Poisson and read noise, a bias level with fixed structure and a drift along the rows
that the overscan strip sees too, a few saturated stars (clipped at the ADC maximum),
cosmic rays, pointing jitter and a small radial optical distortion. The header carries
an approximate TAN WCS that is off by a few pixels and a fraction of a degree in
rotation. One star transits, one varies sinusoidally, the rest are constant.

Conventions of the truth: pixel positions are 0-based in the *trimmed* frame (what
calibration produces); ``flux_e`` is the star's total number of electrons in the
calibrated frame; the zeropoint ``zp`` of a frame satisfies
``mag_true = -2.5 log10(flux_e / exptime) + zp`` for every constant star.

Examples
--------
>>> import tempfile
>>> night = simulate_night(tempfile.mkdtemp(), SimConfig(nx=128, ny=128, n_science=2,
...                        n_bias=2, n_dark=2, n_flat=2, seed=3))
>>> sorted(p.name for p in night.raw_dir.iterdir())[:2]
['20240315.0001.fits', '20240315.0002.fits']
>>> len(night.frames)
2
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import yaml
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from . import bayer, calibration, io, photometry, timeutil
from .photometry import moffat_alpha
from .wcsmodel import pixel_scale_arcsec

ADC_MAX = 65535
#: A colour sensor's R, G and B pixels: zeropoint offset from ``zp0`` (mag), colour term
#: (the channel's band is V - term * (B - V)), extinction (mag/airmass), sky
#: (mag/arcsec^2) and the flat lamp's level in it (fraction of ``flat_level``).
CHANNEL_MODEL = {
    "R": (-0.25, 0.45, 0.10, 20.3, 0.85),
    "G": (0.0, -0.05, 0.16, 20.8, 1.0),
    "B": (-0.55, -0.75, 0.27, 21.5, 0.55),
}
PIXEL_UM = 9.0  #: the simulated camera's pixel size (XPIXSZ)


@dataclass(frozen=True)
class SimConfig:
    """Every knob of the simulated night (defaults make the demo night)."""

    seed: int = 1
    nx: int = 1024  #: imaging columns
    ny: int = 1024  #: rows
    n_science: int = 30
    n_bias: int = 7
    n_dark: int = 5
    n_flat: int = 7
    exptime: float = 60.0  #: science exposure, s
    cadence: float = 300.0  #: seconds between science exposure starts
    dark_exptime: float = 120.0
    flat_exptime: float = 5.0
    flat_level: float = 25000.0  #: e- per pixel in the flats
    start: str = "2024-03-15T03:00:00"  #: UTC start of the first science frame
    filter: str = "V"
    ra: float = 150.25  #: field centre, deg
    dec: float = 20.5
    pixel_scale: float = 0.6  #: arcsec / pixel
    rotation_deg: float = 0.7  #: true position angle of the detector columns
    gain: float = 1.8  #: e- / ADU
    read_noise: float = 6.5  #: e-
    bias_level: float = 1000.0  #: ADU
    prescan: int = 8
    overscan: int = 32
    amplifiers: int = 1  #: read out through this many amplifiers side by side
    amp_extensions: bool = True  #: one FITS extension per amplifier, else all in one image
    saturate_adu: float = 62000.0  #: written as SATURATE
    zp0: float = 24.8  #: mag of 1 e-/s above the atmosphere
    color_term: float = 0.0  #: the instrument's band is V - color_term * (B - V)
    scintillation: bool = False  #: multiply fluxes by Young's scintillation noise
    diameter_m: float = 0.6  #: telescope aperture (scintillation)
    extinction: float = 0.15  #: mag / airmass
    transparency_rms: float = 0.01  #: mag, frame to frame
    sky_mag: float = 20.8  #: mag / arcsec^2
    dark_current: float = 0.02  #: e- / s / pixel
    hot_fraction: float = 3e-4
    fwhm_min: float = 2.6  #: px
    fwhm_max: float = 4.2
    moffat_beta: float = 3.0
    #: the FWHM's growth from the field's centre to its corners, as a fraction (field
    #: curvature: quadratic in the distance from the centre)
    psf_variation: float = 0.0
    stars_per_arcmin2: float = 4.5
    mag_min: float = 10.5
    mag_max: float = 20.5  #: catalog limit; fainter stars are in the images only
    jitter_px: float = 2.5
    wcs_shift_px: float = 4.0  #: error of the header WCS
    wcs_rotation_deg: float = 0.3
    write_wcs: bool = True  #: False: headers carry RA/DEC and optics only, no WCS
    flip: bool = False  #: mirrored camera (parity flipped)
    pointing_error_arcsec: float = 0.0  #: error of the header RA/DEC
    focal_length_error: float = 0.0  #: fractional error of FOCALLEN (so of the scale)
    distortion_px: float = 1.0  #: radial distortion at the frame corner
    vignetting: float = 0.12  #: fractional loss at the corner
    prnu: float = 0.01  #: pixel-to-pixel response rms
    cosmic_rate: float = 0.5  #: per second per megapixel
    transit_depth: float = 0.02
    transit_duration_h: float = 1.0
    transit_ingress_h: float = 0.15
    variable_period_h: float = 1.3
    variable_amplitude: float = 0.05  #: fractional flux semi-amplitude
    site_lat: float = 31.9583
    site_lon: float = -111.5967
    site_elev: float = 2096.0
    targets: bool = False  #: list the transiting and the variable star as the config's targets
    #: A colour sensor's Bayer pattern of the raw array as stored (``RGGB``...; "": mono):
    #: each channel with its own throughput, colour term, extinction and sky
    #: (:data:`CHANNEL_MODEL`), the truth per channel plane (frame ``<frame>_<channel>``).
    bayer: str = ""
    row_order: str = "TOP-DOWN"  #: the ROWORDER written beside BAYERPAT
    #: An asteroid crossing the field in a straight line, passing 1" from a field star at
    #: the night's middle, with a double-peaked light curve (its ephemeris in JPL
    #: Horizons' format beside the raw folder, its truth in ``truth/asteroid.parquet``).
    asteroid: bool = False
    asteroid_mag: float = 15.5  #: mean magnitude (the catalog's system)
    asteroid_rate: float = 0.5  #: arcsec / min
    asteroid_pa_deg: float = 70.0  #: direction of motion, deg east of north
    asteroid_period_h: float = 2.4  #: rotation period
    asteroid_amplitude: float = 0.3  #: of the double-peaked term (peak to peak, mag)
    asteroid_delta_au: float = 1.35  #: from the observer (its light time shifts its clock)
    asteroid_r_au: float = 2.2  #: from the Sun
    asteroid_phase_deg: float = 18.0


#: A one-shot-colour night (the tests' and ``benchmarks/colour.py``'s): RGGB, a 1 %
#: transit, 50 frames of 60 s every 2 minutes; star images of 5-7 px FWHM on the mosaic,
#: so 2.5-3.5 px on each channel plane.
COLOUR_NIGHT = SimConfig(
    nx=768, ny=768, n_science=50, cadence=120.0, seed=13, bayer="RGGB",
    fwhm_min=5.0, fwhm_max=7.0, transit_depth=0.01, targets=True,
)  # fmt: skip


class _Asteroid:
    """The simulated asteroid: moving at ``asteroid_rate`` along ``asteroid_pa_deg``,
    1 arcsec from a field star of about its brightness at ``t_mid`` (JD, UTC)."""

    def __init__(self, cfg: SimConfig, stars: pd.DataFrame, nominal: WCS, t_mid: float):
        self.cfg, self.t_mid = cfg, t_mid
        x, y = nominal.world_to_pixel_values(stars["ra"].to_numpy(), stars["dec"].to_numpy())
        near_centre = np.hypot(x - cfg.nx / 2, y - cfg.ny / 2)
        fits_mag = np.abs(stars["mag"].to_numpy() - cfg.asteroid_mag) < 1.5
        fits_mag &= (stars["kind"] == "constant").to_numpy()
        self.star = int(np.argmin(np.where(fits_mag, near_centre, near_centre + 1e6)))
        pa = np.radians(cfg.asteroid_pa_deg)
        star = SkyCoord(stars["ra"].iloc[self.star], stars["dec"].iloc[self.star], unit="deg")
        self.crossing = star.directional_offset_by((pa + np.pi / 2) * u.rad, 1.0 * u.arcsec)
        self.light_time = cfg.asteroid_delta_au * 499.004784 / 86400.0

    def sky(self, jd):
        """RA, Dec (deg) at times ``jd`` (UTC)."""
        minutes = (np.asarray(jd, float) - self.t_mid) * 1440.0
        p = self.crossing.directional_offset_by(
            np.where(minutes >= 0, 0.0, np.pi) * u.rad
            + np.radians(self.cfg.asteroid_pa_deg) * u.rad,
            np.abs(minutes) * self.cfg.asteroid_rate * u.arcsec,
        )
        return p.ra.deg, p.dec.deg

    def mag(self, jd):
        """The magnitude seen at ``jd`` (UTC): the rotation at the light's departure."""
        c = self.cfg
        turn = (
            2
            * np.pi
            * (np.asarray(jd, float) - self.light_time - self.t_mid)
            / (c.asteroid_period_h / 24)
        )
        half = c.asteroid_amplitude / 2
        return c.asteroid_mag + half * np.cos(2 * turn) + 0.1 * half * np.cos(turn + 0.7)

    def amplitude(self) -> float:
        """Peak-to-peak amplitude of the light curve."""
        return float(
            np.ptp(self.mag(self.t_mid + np.linspace(0, self.cfg.asteroid_period_h / 24, 2000)))
        )

    def horizons_text(self, jd0: float, jd1: float, name: str, csv: bool = True) -> str:
        """The ephemeris over ``jd0``-``jd1`` every 10 minutes as the JPL Horizons API
        writes it (observer table, UT): CSV in degrees, or (``csv=False``) its default
        text table, sexagesimal, with Sun/Moon marks, azimuth-elevation pairs and the
        sidereal time as hours minutes seconds."""
        c = self.cfg
        jd = np.arange(np.floor(jd0 * 144) / 144, jd1 + 1 / 144, 1 / 144)
        ra, dec = self.sky(jd)
        rows = []
        for t, a, d in zip(jd, ra, dec, strict=True):
            cal = Time(t, format="jd", scale="utc").strftime("%Y-%b-%d %H:%M")
            if csv:
                rows.append(
                    f" {cal}, {t:.9f}, , , {a:12.7f}, {d:12.7f}, {c.asteroid_mag:8.3f},   5.120, "
                    f"{c.asteroid_r_au:.10f},  -0.52, {c.asteroid_delta_au:.11f},  -8.31, "
                    f"{c.asteroid_phase_deg:8.4f}, 142.1075,   1.8231,"
                )
            else:
                pos = SkyCoord(a, d, unit="deg")
                hms = pos.ra.to_string(unit="hourangle", sep=" ", precision=3, pad=True)
                dms = pos.dec.to_string(sep=" ", precision=2, alwayssign=True, pad=True)
                rows.append(
                    f" {cal} *m  {hms} {dms} 231.4471  35.2231  08 12 44.1031"
                    f"  {c.asteroid_mag:7.3f}   5.120 {c.asteroid_r_au:15.11f}  -0.5200000"
                    f" {c.asteroid_delta_au:16.13f}  -8.3100000 {c.asteroid_phase_deg:8.4f}"
                    f" 142.1075   1.8231"
                )
        header = (
            " Date__(UT)__HR:MN, Date_________JDUT, , , R.A._(ICRF), DEC_(ICRF),    APmag,"
            "   S-brt,             r,        rdot,             delta,      deldot,"
            "    S-T-O,   PAB-LON,  PAB-LAT,"
            if csv
            else " Date__(UT)__HR:MN     R.A._____(ICRF)_____DEC Azi_(a-appr)_Elev"
            "  L_Ap_Sid_Time   APmag   S-brt               r        rdot"
            "            delta      deldot    S-T-O  PAB-LON  PAB-LAT"
        )
        return "\n".join(
            [
                "API VERSION: 1.2",
                "API SOURCE: NASA/JPL Horizons API",
                "",
                "*" * 79,
                f"Target body name: {name}                 {{source: fieldphot.synthetic}}",
                "Center body name: Earth (399)                     {source: DE441}",
                "Center-site name: fieldphot simulated site",
                "*" * 79,
                header,
                "*" * 79,
                "$$SOE",
                *rows,
                "$$EOE",
                "*" * 79,
                "",
            ]
        )


#: An asteroid night (the tests' and ``benchmarks/asteroid.py``'s): six hours of 60 s
#: frames every 6 minutes, the asteroid rotating in 2.4 h (2.5 rotations) at 0.5"/min,
#: passing 1" from a field star at the night's middle.
ASTEROID_NIGHT = SimConfig(nx=512, ny=512, n_science=60, cadence=360.0, seed=3, asteroid=True)

#: A fast asteroid whose 60 s trail is three times the seeing (3 px FWHM).
TRAILED_NIGHT = SimConfig(
    nx=512, ny=512, n_science=12, cadence=70.0, seed=4, asteroid=True, asteroid_rate=5.4,
    fwhm_min=3.0, fwhm_max=3.0,
)  # fmt: skip


#: A crowded field (the tests' and ``benchmarks/crowded.py``'s, at their own size): many
#: stars within two FWHM of a neighbour, the PSF 10 % broader in the corners.
CROWDED_NIGHT = SimConfig(
    nx=384, ny=384, n_science=3, seed=21, stars_per_arcmin2=20.0, psf_variation=0.1
)


@dataclass
class Night:
    """Paths and truth of a simulated night."""

    root: Path
    raw_dir: Path
    refcat: Path
    config: Path
    stars: pd.DataFrame
    frames: pd.DataFrame
    fluxes: pd.DataFrame
    params: dict


def _stamp(x, y, alpha, beta, half, oversample=3):
    """Moffat profile integrated over pixels (by oversampling) around (x, y).

    Returns (x0, y0, stamp) with the stamp's lower-left pixel at integer (x0, y0)
    and the profile normalized to unit total flux over the plane.
    """
    x0, y0 = int(np.floor(x)) - half, int(np.floor(y)) - half
    n = 2 * half + 1
    sub = (np.arange(n * oversample) + 0.5) / oversample - 0.5
    dx = x0 + sub - x
    dy = y0 + sub - y
    r2 = dy[:, None] ** 2 + dx[None, :] ** 2
    prof = (beta - 1.0) / (np.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)
    prof = prof.reshape(n, oversample, n, oversample).mean(axis=(1, 3))
    return x0, y0, prof


def _add(image, x0, y0, stamp):
    ny, nx = image.shape
    h, w = stamp.shape
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + w, nx), min(y0 + h, ny)
    if xa >= xb or ya >= yb:
        return
    image[ya:yb, xa:xb] += stamp[ya - y0 : yb - y0, xa - x0 : xb - x0]


def _tan_wcs(cfg: SimConfig, rotation_deg: float, crval, crpix) -> WCS:
    """A TAN WCS with north up, east left, rotated by ``rotation_deg`` (0-based crpix)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]
    s = cfg.pixel_scale / 3600.0
    t = np.radians(rotation_deg)
    cd = np.array([[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]])
    w.wcs.cd = cd * [-1, 1] if cfg.flip else cd
    return w


def _distort(cfg: SimConfig, u, v):
    """Radial (barrel) distortion about the frame centre, ``distortion_px`` at the corner."""
    cx, cy = (cfg.nx - 1) / 2.0, (cfg.ny - 1) / 2.0
    rmax = np.hypot(cx, cy)
    k = cfg.distortion_px / rmax**3
    du, dv = u - cx, v - cy
    f = 1.0 + k * (du**2 + dv**2)
    return cx + du * f, cy + dv * f


def transit_model(t, t0, depth, duration, ingress):
    """Fractional flux of a trapezoidal transit (times in days)."""
    dt = np.abs(np.asarray(t, float) - t0)
    half = duration / 2.0
    frac = np.clip((half - dt) / ingress, 0.0, 1.0)
    return 1.0 - depth * frac


def _draw_stars(cfg: SimConfig, rng, nominal: WCS) -> pd.DataFrame:
    margin = 40
    area = (cfg.nx + 2 * margin) * (cfg.ny + 2 * margin) * (cfg.pixel_scale / 60.0) ** 2
    mag_faint = cfg.mag_max + 1.5
    n = int(round(cfg.stars_per_arcmin2 * area * 10 ** (0.3 * (mag_faint - cfg.mag_max))))
    # Luminosity function dN/dm ~ 10^(0.3 m), by inverse transform.
    lo, hi = 10 ** (0.3 * cfg.mag_min), 10 ** (0.3 * mag_faint)
    mags = np.log10(lo + rng.random(n) * (hi - lo)) / 0.3
    x = rng.uniform(-margin, cfg.nx + margin, n)
    y = rng.uniform(-margin, cfg.ny + margin, n)
    # A few bright stars that saturate.
    inner = np.flatnonzero((x > 60) & (x < cfg.nx - 60) & (y > 60) & (y < cfg.ny - 60))
    for i, m in zip(inner[:3], (cfg.mag_min, cfg.mag_min + 1.0, cfg.mag_min + 2.0), strict=False):
        mags[i] = m
    color = rng.uniform(0.3, 1.4, n)  # B - V
    sky = nominal.pixel_to_world(x, y)
    stars = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "ra": sky.ra.deg,
            "dec": sky.dec.deg,
            "mag": mags,
            "color": color,
            "kind": "constant",
        }
    )
    # The transiting and variable stars: bright but unsaturated, well inside the frame.
    cx, cy = cfg.nx / 2, cfg.ny / 2
    ok = (
        (mags > 14.3)
        & (mags < 15.3)
        & (np.abs(x - cx) < cfg.nx / 3)
        & (np.abs(y - cy) < cfg.ny / 3)
    )
    ok_idx = np.flatnonzero(ok)
    if len(ok_idx) < 2:  # tiny fields: promote two central stars
        ok_idx = np.argsort(np.hypot(x - cx, y - cy))[:2]
        stars.loc[ok_idx, "mag"] = [14.6, 15.0]
    stars.loc[ok_idx[0], "kind"] = "transit"
    stars.loc[ok_idx[1], "kind"] = "variable"
    return stars


def _refcat(cfg: SimConfig, stars: pd.DataFrame, rng) -> pd.DataFrame:
    """The catalog a survey would give: positions, V and B with realistic errors."""
    cat = stars[stars["mag"] <= cfg.mag_max].copy()
    v, bv = cat["mag"].to_numpy(), cat["color"].to_numpy()
    e_v = 0.005 + 0.03 * 10 ** (0.4 * (v - 19.0))
    e_b = 0.005 + 0.03 * 10 ** (0.4 * (v + bv - 19.0))
    return pd.DataFrame(
        {
            "id": cat["id"].to_numpy(),
            "ra": cat["ra"].to_numpy(),
            "dec": cat["dec"].to_numpy(),
            "Vmag": v + rng.normal(0, e_v),
            "e_Vmag": e_v,
            "Bmag": v + bv + rng.normal(0, e_b),
            "e_Bmag": e_b,
        }
    )


def _illumination(cfg: SimConfig, rng) -> np.ndarray:
    yy, xx = np.mgrid[0 : cfg.ny, 0 : cfg.nx]
    r = np.hypot(xx - (cfg.nx - 1) / 2, yy - (cfg.ny - 1) / 2) / np.hypot(cfg.nx / 2, cfg.ny / 2)
    illum = (1.0 - cfg.vignetting * r**2) * (1.0 + rng.normal(0, cfg.prnu, r.shape))
    return illum / np.median(illum)


class _Colours:
    """A colour sensor's channels (:data:`CHANNEL_MODEL`) over the trimmed frame."""

    letters = ("R", "G", "B")

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        # the pattern of the imaging pixels: the raw array's, past the prescan columns
        self.pattern = bayer.shifted(cfg.bayer, 0, cfg.prescan % 2)
        tile = np.array(list(self.pattern)).reshape(2, 2)
        self.colour = np.tile(tile, (cfg.ny // 2 + 1, cfg.nx // 2 + 1))[: cfg.ny, : cfg.nx]
        self.lamp = self.of(lambda c: CHANNEL_MODEL[c][4])

    def of(self, value) -> np.ndarray:
        """A frame-sized map of ``value(colour)`` for each pixel's colour."""
        out = np.empty(self.colour.shape)
        for c in self.letters:
            out[self.colour == c] = value(c)
        return out

    def zeropoints(self, airmass: float, transparency: float) -> dict:
        cfg = self.cfg
        return {
            c: cfg.zp0 + CHANNEL_MODEL[c][0] - CHANNEL_MODEL[c][2] * airmass - transparency
            for c in self.letters
        }

    def rate(self, c: str, color, zp: float):
        """A star's e-/s in channel ``c`` over its rate in V above the atmosphere."""
        return 10 ** (0.4 * (CHANNEL_MODEL[c][1] * color + zp - self.cfg.zp0))

    def tile(self, x0: int, y0: int, shape, flux: dict) -> np.ndarray:
        """Electrons per unit of a stamp at (x0, y0): 4 x the channel's flux on its
        pixels, so that each channel plane holds the channel's flux."""
        rows = (y0 + np.arange(shape[0])) % 2
        cols = (x0 + np.arange(shape[1])) % 2
        t = np.array([4.0 * flux[c] for c in self.pattern]).reshape(2, 2)
        return t[rows[:, None], cols[None, :]]

    def sky(self, exptime: float, zp: dict) -> np.ndarray:
        scale = self.cfg.pixel_scale**2
        return self.of(lambda c: 10 ** (-0.4 * (CHANNEL_MODEL[c][3] - zp[c])) * scale * exptime)

    def truth(self, stem, x, y, flux: dict, zp: dict, color, saturated) -> list[pd.DataFrame]:
        """Each channel plane's truth (positions in plane pixels)."""
        out = []
        nx, ny = self.cfg.nx // 2, self.cfg.ny // 2
        for ch, (r0, c0) in bayer.offsets(self.pattern).items():
            c = ch[0]
            xp, yp = (x - c0) / 2.0, (y - r0) / 2.0
            out.append(
                pd.DataFrame(
                    {
                        "frame": f"{stem}_{ch}",
                        "channel": ch,
                        "id": np.arange(1, len(x) + 1),  # as _draw_stars numbers them
                        "x": xp,
                        "y": yp,
                        "flux_e": flux[c],
                        "mag_true": -2.5 * np.log10(flux[c] / self.cfg.exptime)
                        + zp[c]
                        + CHANNEL_MODEL[c][1] * color,
                        "in_frame": (xp >= 0) & (xp <= nx - 1) & (yp >= 0) & (yp <= ny - 1),
                        "saturated": saturated,
                    }
                )
            )
        return out


class _Camera:
    """Fixed properties of the detector, and the readout of an electron image to ADU."""

    def __init__(self, cfg: SimConfig, rng):
        self.cfg = cfg
        if cfg.nx % cfg.amplifiers:
            raise ValueError(f"nx={cfg.nx} does not split into {cfg.amplifiers} amplifiers")
        # Amplifiers differ in gain and bias level, as real multi-amplifier CCDs do.
        self.amp_gain = [cfg.gain * (1 + 0.12 * k) for k in range(cfg.amplifiers)]
        self.amp_bias = [cfg.bias_level + 120.0 * k for k in range(cfg.amplifiers)]
        yy, xx = np.mgrid[0 : cfg.ny, 0 : cfg.nx]
        # Fixed bias structure in the imaging area: column pattern and a gentle gradient.
        self.bias_pattern = rng.normal(0, 1.5, cfg.nx)[None, :] + 3.0 * (xx / cfg.nx) * (
            yy / cfg.ny
        )
        self.illum = _illumination(cfg, rng)
        hot = rng.random((cfg.ny, cfg.nx)) < cfg.hot_fraction
        self.dark_rate = np.full((cfg.ny, cfg.nx), cfg.dark_current)
        self.dark_rate[hot] = rng.uniform(5.0, 60.0, hot.sum())

    def read_out(self, electrons: np.ndarray, rng):
        """Read an electron image out through the amplifiers.

        Returns each amplifier's raw uint16 array (prescan | imaging | overscan, with its
        own gain, bias level and row drift), its header cards, and the detector-shaped
        map of pixels at or above SATURATE.
        """
        cfg = self.cfg
        w = cfg.nx // cfg.amplifiers
        rows = np.arange(cfg.ny) / cfg.ny
        img = slice(cfg.prescan, cfg.prescan + w)
        arrays, cards = [], []
        saturated = np.zeros((cfg.ny, cfg.nx), bool)
        for k, (gain, level) in enumerate(zip(self.amp_gain, self.amp_bias, strict=True)):
            cols = slice(k * w, (k + 1) * w)
            a, b, c = rng.normal(0, [2.0, 1.5, 1.0])
            drift = a + b * rows + c * rows**2  # frame-to-frame level and row drift
            raw = np.empty((cfg.ny, cfg.prescan + w + cfg.overscan))
            raw[:] = level + drift[:, None]
            raw[:, img] += self.bias_pattern[:, cols] + electrons[:, cols] / gain
            raw += rng.normal(0, cfg.read_noise / gain, raw.shape)
            raw = np.clip(np.round(raw), 0, ADC_MAX).astype(np.uint16)
            saturated[:, cols] = raw[:, img] >= cfg.saturate_adu
            o0 = cfg.prescan + w + 1
            arrays.append(raw)
            cards.append(
                {
                    "GAIN": (gain, "e-/ADU"),
                    "RDNOISE": (cfg.read_noise, "e-"),
                    "SATURATE": (cfg.saturate_adu, "ADU"),
                    "TRIMSEC": f"[{cfg.prescan + 1}:{cfg.prescan + w},1:{cfg.ny}]",
                    "BIASSEC": f"[{o0 + 2}:{o0 + cfg.overscan - 1},1:{cfg.ny}]",
                    "DETSEC": f"[{k * w + 1}:{(k + 1) * w},1:{cfg.ny}]",
                }
            )
        return arrays, cards, saturated

    def cosmic_rays(self, image: np.ndarray, exptime: float, rng) -> None:
        cfg = self.cfg
        n = rng.poisson(cfg.cosmic_rate * exptime * cfg.nx * cfg.ny / 1e6)
        for _ in range(n):
            x, y = rng.integers(0, cfg.nx), rng.integers(0, cfg.ny)
            length = rng.integers(1, 4)
            dx, dy = rng.choice([-1, 0, 1], 2)
            energy = rng.lognormal(np.log(1500.0), 0.6)
            for k in range(length):
                xi, yi = x + k * dx, y + k * dy
                if 0 <= xi < cfg.nx and 0 <= yi < cfg.ny:
                    image[yi, xi] += energy / length


def _header(cfg: SimConfig, imagetyp: str, start: Time, exptime: float) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"] = imagetyp
    h["DATE-OBS"] = (start.isot, "UTC start of exposure")
    h["EXPTIME"] = (float(exptime), "s")
    h["XBINNING"] = 1
    h["YBINNING"] = 1
    h["SITELAT"] = cfg.site_lat
    h["SITELONG"] = (cfg.site_lon, "deg, east positive")
    h["SITEELEV"] = cfg.site_elev
    if cfg.bayer:  # the pattern as the capture program writes it, in its row order
        h["BAYERPAT"] = next(
            p
            for p in bayer.PATTERNS
            if bayer.stored_pattern(p, 0, 0, cfg.row_order, cfg.ny) == cfg.bayer
        )
        h["XBAYROFF"], h["YBAYROFF"], h["ROWORDER"] = 0, 0, cfg.row_order
    h["INSTRUME"] = "fieldphot-sim"
    h["TELESCOP"] = "Simulated 0.6m"
    return h


def _header_wcs(cfg: SimConfig, rng) -> WCS:
    """The approximate WCS a telescope writes: shifted and rotated from the truth."""
    nominal = _nominal_wcs(cfg)
    shift = rng.normal(0, 1, 2)
    shift *= cfg.wcs_shift_px / np.hypot(*shift)
    c = np.array([(cfg.nx - 1) / 2, (cfg.ny - 1) / 2])
    crval = nominal.pixel_to_world(*(c + shift))
    rot = cfg.rotation_deg + cfg.wcs_rotation_deg
    return _tan_wcs(cfg, rot, (crval.ra.deg, crval.dec.deg), c)


def _nominal_wcs(cfg: SimConfig) -> WCS:
    c = ((cfg.nx - 1) / 2, (cfg.ny - 1) / 2)
    return _tan_wcs(cfg, cfg.rotation_deg, (cfg.ra, cfg.dec), c)


def simulate_night(outdir, cfg: SimConfig = SimConfig()) -> Night:
    """Write a simulated raw night and its truth into ``outdir``.

    Parameters
    ----------
    outdir : path
        Created if needed; receives ``raw/``, ``refcat.parquet``, ``config.yaml`` and
        ``truth/`` (``stars.parquet``, ``frames.parquet``, ``fluxes.parquet``,
        ``params.json``).
    cfg : SimConfig
        The night's parameters; the same ``cfg`` always gives the same files.

    Returns
    -------
    Night
    """
    root = Path(outdir)
    raw_dir = root / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(cfg.seed)
    rng_field, rng_frames = (np.random.default_rng(s) for s in seeds.spawn(2))
    nominal = _nominal_wcs(cfg)
    stars = _draw_stars(cfg, rng_field, nominal)
    refcat = _refcat(cfg, stars, rng_field)
    camera = _Camera(cfg, rng_field)
    header_wcs = _header_wcs(cfg, rng_field)
    pointing = SkyCoord(cfg.ra, cfg.dec, unit="deg").directional_offset_by(
        np.random.default_rng([cfg.seed, 4]).uniform(0, 360) * u.deg,
        cfg.pointing_error_arcsec * u.arcsec,
    )
    date = cfg.start[:10].replace("-", "")
    t_start = Time(cfg.start, scale="utc")
    colours = _Colours(cfg) if cfg.bayer else None

    seq = iter(range(1, 10_000))

    def write(readout, header):
        """One FITS file: a single image, or one extension per amplifier (with DETSEC)."""
        arrays, cards, saturated = readout
        path = raw_dir / f"{date}.{next(seq):04d}.fits"
        if len(arrays) == 1:
            header = header.copy()
            header.update({k: v for k, v in cards[0].items() if k != "DETSEC"})
            hdus = fits.HDUList([fits.PrimaryHDU(arrays[0], header)])
        elif not cfg.amp_extensions:  # amplifiers side by side in one image, numbered cards
            header = header.copy()
            width = arrays[0].shape[1]
            for k, c in enumerate(cards):
                for key, value in c.items():
                    if key in ("TRIMSEC", "BIASSEC"):
                        rows, cols = calibration.parse_section(value)
                        value = f"[{cols.start + 1 + k * width}:{cols.stop + k * width},1:{cfg.ny}]"
                    header[f"{key[:7]}{k + 1}"] = value
            hdus = fits.HDUList([fits.PrimaryHDU(np.hstack(arrays), header)])
        else:
            hdus = fits.HDUList(
                [fits.PrimaryHDU(header=header)]
                + [
                    fits.ImageHDU(
                        a,
                        fits.Header(
                            [(k_, *v) if isinstance(v, tuple) else (k_, v) for k_, v in c.items()]
                        ),
                        name=f"AMP{k + 1}",
                    )
                    for k, (a, c) in enumerate(zip(arrays, cards, strict=True))
                ]
            )
        with io.atomic_path(path) as tmp:
            hdus.writeto(tmp)
        return path, saturated

    frame_rng = iter(np.random.default_rng(s) for s in seeds.spawn(10_000)[2:])

    # Calibration frames, taken before the science frames.
    t_cal = t_start - 3600 * u.s
    for i in range(cfg.n_bias):
        rng = next(frame_rng)
        write(
            camera.read_out(np.zeros((cfg.ny, cfg.nx)), rng),
            _header(cfg, "Bias Frame", t_cal + i * 10 * u.s, 0.0),
        )
    for i in range(cfg.n_dark):
        rng = next(frame_rng)
        e = rng.poisson(camera.dark_rate * cfg.dark_exptime).astype(float)
        camera.cosmic_rays(e, cfg.dark_exptime, rng)
        write(
            camera.read_out(e, rng),
            _header(cfg, "Dark Frame", t_cal + (600 + i * 150) * u.s, cfg.dark_exptime),
        )
    for i in range(cfg.n_flat):
        rng = next(frame_rng)
        level = cfg.flat_level * (1.0 + 0.15 * (i - cfg.n_flat / 2) / cfg.n_flat)
        lamp = level * camera.illum * (colours.lamp if colours else 1.0)
        e = rng.poisson(lamp + camera.dark_rate * cfg.flat_exptime).astype(float)
        h = _header(cfg, "Flat Field", t_cal + (1800 + 30 * i) * u.s, cfg.flat_exptime)
        h["FILTER"] = cfg.filter
        write(camera.read_out(e, rng), h)

    # Science frames.
    n = cfg.n_science
    starts = t_start + np.arange(n) * cfg.cadence * u.s
    mjd_mid = starts.mjd + cfg.exptime / 2 / 86400.0
    site = (cfg.site_lat, cfg.site_lon, cfg.site_elev)
    bjd = timeutil.bjd_tdb(mjd_mid, cfg.ra, cfg.dec, *site)
    x_air = timeutil.airmass(mjd_mid, cfg.ra, cfg.dec, *site)
    low = ~(np.isfinite(x_air) & (x_air >= 1.0) & (x_air < 5.0))
    if low.any():
        raise ValueError(
            f"science frame {int(np.argmax(low))} of {n} would be taken with the field near or "
            f"below the horizon (airmass {x_air[low][0]:.2f}): {n} frames every "
            f"{cfg.cadence:.0f} s do not fit in the night; lower cadence or n_science"
        )
    steps = rng_field.normal(0, 1, n).cumsum()
    steps = (steps - steps.min()) / max(np.ptp(steps), 1e-9)
    fwhm = cfg.fwhm_min + (cfg.fwhm_max - cfg.fwhm_min) * steps
    transparency = rng_field.normal(0, cfg.transparency_rms, n)
    zp = cfg.zp0 - cfg.extinction * x_air - transparency
    jitter = rng_field.normal(0, cfg.jitter_px / np.sqrt(2), (n, 2))
    t0_transit = float(bjd[n // 2])
    t0_var = float(bjd[0])
    sky_rate = 10 ** (-0.4 * (cfg.sky_mag - cfg.zp0)) * cfg.pixel_scale**2  # e-/s/px

    if cfg.asteroid and cfg.bayer:
        raise ValueError("the simulated asteroid is drawn on monochrome nights only (bayer='')")
    rock = (
        _Asteroid(cfg, stars, nominal, float(mjd_mid[n // 2] + 2400000.5)) if cfg.asteroid else None
    )
    rock_rows = []
    x_nom, y_nom = nominal.world_to_pixel_values(stars["ra"].to_numpy(), stars["dec"].to_numpy())
    kind = stars["kind"].to_numpy()
    color = stars["color"].to_numpy()
    # e-/s above the atmosphere, in the instrument's own band
    base_rate = 10 ** (-0.4 * (stars["mag"].to_numpy() - cfg.color_term * color - cfg.zp0))
    frame_rows, flux_rows = [], []
    for k in range(n):
        rng = next(frame_rng)
        factor = np.ones(len(stars))
        tr = kind == "transit"
        factor[tr] = transit_model(
            bjd[k],
            t0_transit,
            cfg.transit_depth,
            cfg.transit_duration_h / 24,
            cfg.transit_ingress_h / 24,
        )
        vr = kind == "variable"
        factor[vr] = 1 + cfg.variable_amplitude * np.sin(
            2 * np.pi * (bjd[k] - t0_var) / (cfg.variable_period_h / 24)
        )
        atm = 10 ** (-0.4 * (cfg.zp0 - zp[k]))
        flux_e = base_rate * factor * atm * cfg.exptime
        if cfg.scintillation:
            sigma = photometry.scintillation(cfg.diameter_m, cfg.exptime, x_air[k], cfg.site_elev)
            flux_e = flux_e * (1 + rng.normal(0, sigma, len(flux_e)))
        x, y = _distort(cfg, x_nom + jitter[k, 0], y_nom + jitter[k, 1])
        alpha = moffat_alpha(fwhm[k], cfg.moffat_beta)
        beta = cfg.moffat_beta
        # each star's own alpha: the PSF broadens towards the corners
        curvature = np.hypot(x - (cfg.nx - 1) / 2, y - (cfg.ny - 1) / 2) ** 2 / (
            ((cfg.nx - 1) / 2) ** 2 + ((cfg.ny - 1) / 2) ** 2
        )
        alpha_i = alpha * (1.0 + cfg.psf_variation * curvature)
        if colours:  # each channel's electrons: its own band, zeropoint and extinction
            zp_c = colours.zeropoints(x_air[k], transparency[k])
            flux_c = {
                c: base_rate * factor * colours.rate(c, color, zp_c[c]) * cfg.exptime
                for c in colours.letters
            }
        stars_img = np.zeros((cfg.ny, cfg.nx))
        for i in np.flatnonzero((x > -30) & (x < cfg.nx + 30) & (y > -30) & (y < cfg.ny + 30)):
            half = int(np.ceil(alpha_i[i] * (25 if flux_e[i] > 3e6 else 8)))
            x0, y0, st = _stamp(x[i], y[i], alpha_i[i], beta, half)
            if colours:
                st = st * colours.tile(x0, y0, st.shape, {c: f[i] for c, f in flux_c.items()})
            else:
                st = flux_e[i] * st
            _add(stars_img, x0, y0, st)
        if rock:  # the asteroid, smeared along its motion during the exposure
            jd_k = mjd_mid[k] + 2400000.5 + cfg.exptime / 86400 * (np.arange(8) + 0.5 - 4) / 8
            a_ra, a_dec = rock.sky(jd_k)
            ax_, ay_ = nominal.world_to_pixel_values(a_ra, a_dec)
            ax_, ay_ = _distort(cfg, ax_ + jitter[k, 0], ay_ + jitter[k, 1])
            a_mag = float(rock.mag(mjd_mid[k] + 2400000.5))
            a_flux = 10 ** (-0.4 * (a_mag - cfg.zp0)) * atm * cfg.exptime
            for x_, y_ in zip(ax_, ay_, strict=True):
                x0, y0, st = _stamp(x_, y_, alpha, beta, int(np.ceil(alpha * 8)))
                _add(stars_img, x0, y0, a_flux / len(ax_) * st)
            mid = len(ax_) // 2
            gap = np.hypot(x - (ax_[mid - 1] + ax_[mid]) / 2, y - (ay_[mid - 1] + ay_[mid]) / 2)
            bright = stars["mag"].to_numpy() < a_mag + 2.5
            rock_rows.append(
                {
                    "frame": "",  # named when written
                    "jd_utc_mid": mjd_mid[k] + 2400000.5,
                    "mag_true": a_mag,
                    "flux_e": a_flux,
                    "x": float((ax_[mid - 1] + ax_[mid]) / 2),
                    "y": float((ay_[mid - 1] + ay_[mid]) / 2),
                    "trail_px": float(np.hypot(ax_[-1] - ax_[0], ay_[-1] - ay_[0]) * 8 / 7),
                    "star_gap_px": float(np.min(gap[bright])),
                }
            )
        sky_e = sky_rate * cfg.exptime * atm
        if colours:
            sky_e = colours.sky(cfg.exptime, zp_c)
        expected = (stars_img + sky_e) * camera.illum + camera.dark_rate * cfg.exptime
        e = rng.poisson(expected).astype(float)
        camera.cosmic_rays(e, cfg.exptime, rng)
        h = _header(cfg, "Light Frame", starts[k], cfg.exptime)
        h["FILTER"] = cfg.filter
        h["OBJECT"] = "SIMFIELD"
        h["RA"] = _sexa(pointing.ra.deg / 15.0)
        h["DEC"] = _sexa(pointing.dec.deg, sign=True)
        h["AIRMASS"] = round(float(x_air[k]), 4)
        h["XPIXSZ"] = (PIXEL_UM, "binned pixel size, micron")
        h["FOCALLEN"] = (
            round(206.264806 * PIXEL_UM / cfg.pixel_scale * (1 + cfg.focal_length_error), 1),
            "mm",
        )
        if cfg.write_wcs:
            wcs_h = header_wcs.to_header()
            if cfg.amplifiers == 1:
                wcs_h["CRPIX1"] += cfg.prescan  # the WCS refers to the raw array (MEF: detector)
            h.update(wcs_h)
        path, sat_map = write(camera.read_out(e, rng), h)
        if rock:
            rock_rows[-1]["frame"] = path.name.split(".fits")[0]
        saturated = _saturated_within(sat_map, x, y, 2.0 * fwhm[k])
        if colours:
            stem = path.name.split(".fits")[0]
            truth = colours.truth(stem, x, y, flux_c, zp_c, color, saturated)
            flux_rows += truth
            for t in truth:
                frame_rows.append(
                    {
                        "frame": t["frame"].iloc[0],
                        "exposure": stem,
                        "channel": t["channel"].iloc[0],
                        "mjd_utc_mid": mjd_mid[k],
                        "bjd_tdb": bjd[k],
                        "airmass": x_air[k],
                        "zp": zp_c[t["channel"].iloc[0][0]],
                        "fwhm": fwhm[k] / 2.0,
                        "exptime": cfg.exptime,
                    }
                )
            continue
        frame_rows.append(
            {
                "frame": path.name.split(".fits")[0],
                "mjd_utc_mid": mjd_mid[k],
                "bjd_tdb": bjd[k],
                "airmass": x_air[k],
                "zp": zp[k],
                "fwhm": fwhm[k],  # at the field's centre
                "sky_e": sky_e,
                "jitter_x": jitter[k, 0],
                "jitter_y": jitter[k, 1],
                "exptime": cfg.exptime,
            }
        )
        inside = (x >= 0) & (x <= cfg.nx - 1) & (y >= 0) & (y <= cfg.ny - 1)
        flux_rows.append(
            pd.DataFrame(
                {
                    "frame": frame_rows[-1]["frame"],
                    "id": stars["id"].to_numpy(),
                    "x": x,
                    "y": y,
                    "flux_e": flux_e,
                    # in the catalog's (standard) system
                    "mag_true": -2.5 * np.log10(flux_e / cfg.exptime)
                    + zp[k]
                    + cfg.color_term * color,
                    "in_frame": inside,
                    "saturated": saturated,  # a raw pixel >= SATURATE within 2 FWHM
                }
            )
        )

    frames = pd.DataFrame(frame_rows)
    fluxes = pd.concat(flux_rows, ignore_index=True)
    params = {
        "sim": asdict(cfg),
        "transit": {
            "id": int(stars.loc[stars["kind"] == "transit", "id"].iloc[0]),
            "t0_bjd": t0_transit,
            "depth": cfg.transit_depth,
            "duration_d": cfg.transit_duration_h / 24,
            "ingress_d": cfg.transit_ingress_h / 24,
        },
        "variable": {
            "id": int(stars.loc[stars["kind"] == "variable", "id"].iloc[0]),
            "t0_bjd": t0_var,
            "period_d": cfg.variable_period_h / 24,
            "amplitude": cfg.variable_amplitude,
        },
    }
    truth = root / "truth"
    io.write_table(truth / "stars.parquet", stars, {})
    io.write_table(truth / "frames.parquet", frames, {})
    io.write_table(truth / "fluxes.parquet", fluxes, {})
    io.write_text(truth / "params.json", json.dumps(params, indent=2))
    refcat_path = root / "refcat.parquet"
    io.write_table(refcat_path, refcat, {"source": "fieldphot.synthetic", "seed": cfg.seed})
    config_path = root / "config.yaml"
    demo = demo_config(raw_dir, refcat_path)
    if cfg.bayer:  # each channel's band differs from V by a colour term: fitted per frame
        demo["zeropoint"] = {"color_term": "fit"}
    if cfg.targets:
        # The transiting star with its ephemeris, as a transit observer gives it (and the
        # simulated star's limb darkening: none).
        ephemeris = {
            "t0_bjd": t0_transit,
            "duration_h": cfg.transit_duration_h,
            "limb_darkening": [0.0, 0.0],
        }
        demo["targets"] = [
            {"name": f"{r.kind}-{r.id}", "ra": float(r.ra), "dec": float(r.dec)}
            | (ephemeris if r.kind == "transit" else {})
            for r in stars[stars["kind"].isin(["transit", "variable"])].itertuples()
        ]
    if rock:
        jd = mjd_mid + 2400000.5
        eph = root / "asteroid_horizons.txt"
        io.write_text(eph, rock.horizons_text(jd[0] - 1 / 24, jd[-1] + 1 / 24, "SIMROCK"))
        io.write_table(truth / "asteroid.parquet", pd.DataFrame(rock_rows), {})
        params["asteroid"] = {
            "name": "SIMROCK",
            "star_id": int(stars["id"].iloc[rock.star]),
            "period_h": cfg.asteroid_period_h,
            "amplitude": rock.amplitude(),
            "light_time_d": rock.light_time,
            "ephemeris": str(eph.resolve()),
        }
        io.write_text(truth / "params.json", json.dumps(params, indent=2))
        rock_target = {"name": "SIMROCK", "ephemeris": str(eph.resolve()), "number": 99999}
        demo["targets"] = [*demo.get("targets", []), rock_target]
    io.write_text(config_path, yaml.safe_dump(demo, sort_keys=False))
    return Night(root, raw_dir, refcat_path, config_path, stars, frames, fluxes, params)


def render_stars(shape, x, y, flux, fwhm, sky: float, rng, read_noise: float = 5.0):
    """An image (electrons) of point sources (Moffat, beta 3, of FWHM ``fwhm``: one for
    all or one per source) on a flat sky, with Poisson and read noise.

    Examples
    --------
    >>> im = render_stars((64, 64), [32.0], [20.0], [1e5], 3.0, 100.0, np.random.default_rng(0))
    >>> int(np.unravel_index(np.argmax(im), im.shape)[0])
    20
    """
    fwhm = np.broadcast_to(np.asarray(fwhm, float), np.shape(x))
    image = np.zeros(shape)
    for xi, yi, fi, wi in zip(x, y, flux, fwhm, strict=True):
        x0, y0, st = _stamp(xi, yi, moffat_alpha(wi, 3.0), 3.0, int(4 * wi) + 2, oversample=1)
        _add(image, x0, y0, fi * st)
    return rng.poisson(image + sky).astype(float) + rng.normal(0, read_noise, shape)


def index_star_field(rng, width_deg: float, n: int = 1024, flip: bool = False):
    """An image of a random field of the installed astrometry.net index stars.

    The stars of every index file (``query-starkd``) in a field ``width_deg`` wide at a
    random position and rotation, plus 300 fainter stars the index lacks, rendered on an
    ``n`` x ``n`` frame. Needs astrometry.net (``tools/install-astrometry.sh``).

    Returns
    -------
    image : ndarray
        Electrons.
    stars : DataFrame
        The index stars (``id, ra, dec, mag``), a reference catalog.
    wcs : WCS
        The true WCS.
    n_index : int
        Index stars on the frame.
    """
    from .astrometrynet import index_stars  # noqa: PLC0415 - runs astrometry.net tools

    ra, dec = rng.uniform(0, 360), np.degrees(np.arcsin(rng.uniform(-0.9, 0.9)))
    cfg = SimConfig(nx=n, ny=n, pixel_scale=width_deg * 3600 / n, flip=flip)
    wcs = _tan_wcs(cfg, rng.uniform(0, 360), (ra, dec), ((n - 1) / 2, (n - 1) / 2))
    stars = index_stars(ra, dec, width_deg)
    stars["id"] = np.arange(1, len(stars) + 1)
    x, y = wcs.world_to_pixel_values(stars["ra"].to_numpy(), stars["dec"].to_numpy())
    on = (x > 0) & (x < n - 1) & (y > 0) & (y < n - 1)
    xf, yf = rng.uniform(0, n - 1, (2, 300))
    mags = np.r_[stars["mag"].to_numpy()[on], rng.uniform(13, 16, 300)]
    flux = 10 ** (-0.4 * (mags - 22))
    image = render_stars((n, n), np.r_[x[on], xf], np.r_[y[on], yf], flux, 2.5, 200.0, rng)
    return image, stars, wcs, int(on.sum())


def star_field(
    rng,
    shape=(1024, 1024),
    pixel_scale: float = 1.0,
    rotation_deg: float = 0.0,
    flip: bool = False,
    ra: float = 150.0,
    dec: float = 20.0,
    distortion_px: float = 0.0,
    stars_per_arcmin2: float = 2.0,
    centroid_px: float = 0.05,
) -> tuple[pd.DataFrame, pd.DataFrame, WCS]:
    """A frame's detections and the reference catalog around it, without pixels.

    For testing astrometry alone: the catalog covers three frame widths around
    (ra, dec); the detections are the catalog stars that fall on the frame through the
    true WCS (and ``distortion_px`` of radial distortion at the corner), with centroid
    noise, fluxes from the magnitudes with 5 % scatter, a tenth of them missing, and
    as many again spurious (cosmic rays, galaxies, an asteroid) and fainter stars that
    the catalog lacks.

    Returns
    -------
    sources : DataFrame
        ``x, y, flux, snr, flags`` (0-based pixels), plus the truth ``id`` (0 for
        spurious) and ``x_true, y_true``.
    ref : DataFrame
        ``id, ra, dec, mag``.
    wcs : WCS
        The true (undistorted) WCS of the frame.

    Examples
    --------
    >>> src, ref, w = star_field(np.random.default_rng(1), (256, 256), 1.0)
    >>> len(ref) > len(src) > 20
    True
    """
    ny, nx = shape
    cfg = SimConfig(nx=nx, ny=ny, pixel_scale=pixel_scale, flip=flip, distortion_px=distortion_px)
    wcs = _tan_wcs(cfg, rotation_deg, (ra, dec), ((nx - 1) / 2, (ny - 1) / 2))
    side = 3 * max(nx, ny)
    area = (side * pixel_scale / 60.0) ** 2
    n = int(stars_per_arcmin2 * area)
    u_, v_ = rng.uniform(-side / 2, side / 2, (2, n))
    sky = wcs.pixel_to_world(u_ + (nx - 1) / 2, v_ + (ny - 1) / 2)
    mags = np.log10(10 ** (0.3 * 10.0) + rng.random(n) * (10 ** (0.3 * 19.0) - 10**3)) / 0.3
    ref = pd.DataFrame(
        {"id": np.arange(1, n + 1), "ra": sky.ra.deg, "dec": sky.dec.deg, "mag": mags}
    )
    x0, y0 = wcs.world_to_pixel_values(ref["ra"].to_numpy(), ref["dec"].to_numpy())
    x, y = _distort(cfg, x0, y0)
    on = (x > 0) & (x < nx - 1) & (y > 0) & (y < ny - 1) & (rng.random(n) > 0.1)
    n_fake = max(3, on.sum() // 10)
    fake_mag = rng.uniform(15.0, 20.0, n_fake)
    src = pd.DataFrame(
        {
            "x": np.concatenate(
                [x[on] + rng.normal(0, centroid_px, on.sum()), rng.uniform(0, nx - 1, n_fake)]
            ),
            "y": np.concatenate(
                [y[on] + rng.normal(0, centroid_px, on.sum()), rng.uniform(0, ny - 1, n_fake)]
            ),
            "flux": 10 ** (-0.4 * (np.concatenate([mags[on], fake_mag]) - 25))
            * rng.normal(1, 0.05, on.sum() + n_fake),
            "id": np.concatenate([ref["id"].to_numpy()[on], np.zeros(n_fake, int)]),
            "x_true": np.concatenate([x[on], np.full(n_fake, np.nan)]),
            "y_true": np.concatenate([y[on], np.full(n_fake, np.nan)]),
        }
    )
    src["snr"] = np.sqrt(src["flux"].clip(lower=1))
    src["flags"] = 0
    return src.sample(frac=1, random_state=0).reset_index(drop=True), ref, wcs


def pointing_hint(wcs: WCS, shape, rng, pointing_error: float, scale_error: float) -> dict:
    """Header-like solving hints for a frame of true WCS ``wcs``: RA/Dec moved by
    ``pointing_error`` of the frame's larger side in a random direction, the pixel scale
    off by the fraction ``scale_error``.

    Examples
    --------
    >>> _, _, w = star_field(np.random.default_rng(1), (256, 256), 1.0)
    >>> h = pointing_hint(w, (256, 256), np.random.default_rng(2), 0.5, 0.05)
    >>> round(h["pixel_scale"], 3)
    1.05
    """
    ny, nx = shape
    centre = wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    scale = pixel_scale_arcsec(wcs)
    pa = rng.uniform(0, 2 * np.pi)
    off = pointing_error * max(shape) * scale / 3600.0
    dec = centre.dec.deg + off * np.cos(pa)
    ra = centre.ra.deg + off * np.sin(pa) / np.cos(np.radians(dec))
    return {"ra": ra, "dec": dec, "pixel_scale": scale * (1 + scale_error)}


def _saturated_within(sat_map: np.ndarray, x, y, radius: float) -> np.ndarray:
    """Whether any saturated pixel lies within ``radius`` of each position."""
    ys, xs = np.nonzero(sat_map)
    out = np.zeros(len(x), bool)
    if len(xs):
        from scipy.spatial import cKDTree

        d, _ = cKDTree(np.column_stack([xs, ys])).query(np.column_stack([x, y]))
        out = d <= radius
    return out


def demo_config(raw_dir, refcat_path) -> dict:
    """The config overrides that point the workflow at a simulated night."""
    return {
        "raw_dir": str(Path(raw_dir).resolve()),
        "reference_catalog": {
            "path": str(Path(refcat_path).resolve()),
            "columns": {
                "id": "id",
                "ra": "ra",
                "dec": "dec",
                "mag": "Vmag",
                "mag_err": "e_Vmag",
                "color_mag": "Bmag",
            },
            "magnitude_system": "Vega",
        },
    }


def _sexa(value: float, sign: bool = False) -> str:
    s = "-" if value < 0 else ("+" if sign else "")
    v = abs(value)
    d = int(v)
    m = int((v - d) * 60)
    sec = (v - d - m / 60) * 3600
    return f"{s}{d:02d}:{m:02d}:{sec:05.2f}"


def write_dng(
    path,
    mosaic,
    pattern: str = "RGGB",
    *,
    black: int = 512,
    white: int = 16383,
    exptime: float = 30.0,
    iso: int = 800,
    start: str = "2024:03:15 03:00:00",
    make: str = "fieldphot",
    model: str = "Simulated DSLR",
) -> Path:
    """A camera raw file as a DSLR writes one: an uncompressed DNG (a TIFF whose one
    16-bit CFA image is ``mosaic``, its pattern, black and white levels, exposure time,
    ISO and capture time in its tags and EXIF), as LibRaw (rawpy) reads it.

    Examples
    --------
    >>> import tempfile, rawpy
    >>> p = write_dng(tempfile.mkdtemp() + "/a.dng", np.full((32, 48), 600), "GBRG")
    >>> with rawpy.imread(str(p)) as raw:  # LibRaw takes frames of 22 px and more
    ...     colours = "".join(raw.color_desc.decode()[i] for i in raw.raw_pattern.ravel())
    ...     raw.raw_image_visible.shape, colours, raw.white_level
    ((32, 48), 'GBRG', 16383)
    """
    import struct

    data = np.ascontiguousarray(mosaic, dtype="<u2")
    h, w = data.shape
    if exptime <= 0:  # a bias
        num, den = 0, 1
    elif exptime >= 1:
        num, den = int(round(exptime * 1000)), 1000
    else:  # as cameras write short exposures: 1/30 s
        num, den = 1, int(round(1 / exptime))
    cfa = [{"R": 0, "G": 1, "B": 2}[c] for c in pattern]
    text = lambda s: s.encode() + b"\0"  # noqa: E731
    # (tag, TIFF type, count, packed value): 1 BYTE, 2 ASCII, 3 SHORT, 4 LONG, 5 RATIONAL,
    # 10 SRATIONAL
    exif = [
        (33434, 5, 1, struct.pack("<II", num, den)),
        (34855, 3, 1, struct.pack("<H", iso)),
        (36867, 2, len(start) + 1, text(start)),
    ]
    ifd0 = [
        (254, 4, 1, struct.pack("<I", 0)),
        (256, 4, 1, struct.pack("<I", w)),
        (257, 4, 1, struct.pack("<I", h)),
        (258, 3, 1, struct.pack("<H", 16)),
        (259, 3, 1, struct.pack("<H", 1)),
        (262, 3, 1, struct.pack("<H", 32803)),  # CFA
        (271, 2, len(make) + 1, text(make)),
        (272, 2, len(model) + 1, text(model)),
        (273, 4, 1, None),  # the strip's offset, filled in below
        (277, 3, 1, struct.pack("<H", 1)),
        (278, 4, 1, struct.pack("<I", h)),
        (279, 4, 1, struct.pack("<I", data.nbytes)),
        (284, 3, 1, struct.pack("<H", 1)),
        (306, 2, len(start) + 1, text(start)),
        (33421, 3, 2, struct.pack("<HH", 2, 2)),
        (33422, 1, 4, bytes(cfa)),
        (34665, 4, 1, None),  # the EXIF directory's offset
        (50706, 1, 4, bytes([1, 4, 0, 0])),
        (50708, 2, len(model) + 1, text(model)),
        (50714, 4, 1, struct.pack("<I", black)),
        (50717, 4, 1, struct.pack("<I", white)),
        (
            50721,
            10,
            9,
            struct.pack("<18i", *[1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1]),
        ),
    ]

    def directory(entries, at: int) -> bytes:
        """An IFD at file offset ``at``, its long values after it."""
        head = struct.pack("<H", len(entries))
        extra, body = b"", b""
        after = at + 2 + 12 * len(entries) + 4
        for tag, kind, count, value in entries:
            if len(value) <= 4:
                body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
            else:
                body += struct.pack("<HHII", tag, kind, count, after + len(extra))
                extra += value + b"\0" * (len(value) % 2)
        return head + body + struct.pack("<I", 0) + extra

    size0 = len(directory([(t, k, c, v or b"\0" * 4) for t, k, c, v in ifd0], 8))
    exif_at = 8 + size0 + size0 % 2
    exif_bytes = directory(exif, exif_at)
    strip_at = exif_at + len(exif_bytes) + len(exif_bytes) % 2
    filled = {273: struct.pack("<I", strip_at), 34665: struct.pack("<I", exif_at)}
    ifd0 = [(t, k, c, filled.get(t, v)) for t, k, c, v in ifd0]
    blob = b"II" + struct.pack("<HI", 42, 8) + directory(ifd0, 8)
    blob = blob.ljust(exif_at, b"\0") + exif_bytes
    blob = blob.ljust(strip_at, b"\0") + data.tobytes()
    path = Path(path)
    with io.atomic_path(path) as tmp:
        Path(tmp).write_bytes(blob)
    return path
