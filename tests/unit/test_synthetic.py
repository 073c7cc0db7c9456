"""The simulator: deterministic, physical, and its truth self-consistent."""

import hashlib

import numpy as np
from astropy.io import fits

from fieldphot import synthetic

SMALL = synthetic.SimConfig(nx=96, ny=80, n_science=2, n_bias=2, n_dark=1, n_flat=1, seed=9)


def _digest(d):
    h = hashlib.sha256()
    for p in sorted((d / "raw").iterdir()):
        h.update(fits.getdata(p).tobytes())
    h.update((d / "truth" / "fluxes.parquet").read_bytes())
    return h.hexdigest()


def test_same_seed_same_night(tmp_path):
    a = synthetic.simulate_night(tmp_path / "a", SMALL)
    b = synthetic.simulate_night(tmp_path / "b", SMALL)
    assert _digest(a.root) == _digest(b.root)
    c = synthetic.simulate_night(
        tmp_path / "c", synthetic.SimConfig(**{**SMALL.__dict__, "seed": 10})
    )
    assert _digest(a.root) != _digest(c.root)


def test_raw_frames_look_like_an_observatory_wrote_them(tmp_path):
    night = synthetic.simulate_night(tmp_path, SMALL)
    files = sorted(night.raw_dir.iterdir())
    assert len(files) == 2 + 1 + 1 + 2
    types = [fits.getheader(p)["IMAGETYP"] for p in files]
    assert types == ["Bias Frame"] * 2 + ["Dark Frame", "Flat Field"] + ["Light Frame"] * 2
    h = fits.getheader(files[-1])
    for key in (
        "DATE-OBS",
        "EXPTIME",
        "FILTER",
        "GAIN",
        "RDNOISE",
        "SATURATE",
        "RA",
        "DEC",
        "SITELAT",
        "SITELONG",
        "CRVAL1",
        "CTYPE1",
        "TRIMSEC",
        "BIASSEC",
    ):
        assert key in h, key
    data = fits.getdata(files[-1])
    assert data.dtype == np.uint16 and data.shape == (80, 8 + 96 + 32)
    # The overscan strip holds the bias level only: about bias_level +- read noise.
    over = data[:, 8 + 96 + 2 :].astype(float)
    assert abs(np.median(over) - SMALL.bias_level) < 10
    assert np.std(over) < 3 * SMALL.read_noise / SMALL.gain


def test_truth_is_self_consistent(tmp_path):
    night = synthetic.simulate_night(tmp_path, SMALL)
    fl, fr = night.fluxes, night.frames.set_index("frame")
    stars = night.stars.set_index("id")
    const = fl[fl["id"].map(stars["kind"]) == "constant"]
    # mag_true = -2.5 log10(flux_e / exptime) + zp reproduces the star's catalogue magnitude.
    np.testing.assert_allclose(const["mag_true"], const["id"].map(stars["mag"]), atol=1e-9)
    zp = const["frame"].map(fr["zp"])
    np.testing.assert_allclose(
        -2.5 * np.log10(const["flux_e"] / SMALL.exptime) + zp, const["mag_true"], atol=1e-9
    )
    # Extinction: the zeropoint falls with airmass (up to the thin-cloud jitter).
    assert np.all(np.abs(fr["zp"] - (SMALL.zp0 - SMALL.extinction * fr["airmass"])) < 0.06)


def test_moffat_stamp_holds_the_flux():
    alpha = synthetic.moffat_alpha(3.0, 3.0)
    _, _, st = synthetic._stamp(10.3, 10.7, alpha, 3.0, int(np.ceil(8 * alpha)))
    assert abs(st.sum() - 1.0) < 1e-3


def test_transit_model_shape():
    t = np.array([0.0, 0.02, 0.05])
    f = synthetic.transit_model(t, 0.0, 0.02, 1 / 24, 0.15 / 24)
    assert f[0] == 0.98 and f[2] == 1.0 and 0.98 < f[1] <= 1.0
