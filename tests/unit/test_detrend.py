"""Detrending against injected truth: shared systematics removed, a protected transit kept."""

import numpy as np
import pytest

from fieldphot import detrend
from fieldphot.synthetic import transit_model

T0, DURATION, INGRESS, DEPTH = 0.15, 1 / 24, 0.15 / 24, 0.01


@pytest.fixture(scope="module")
def field():
    """300 frames of 200 stars: white noise plus two systematics each star feels with its
    own weights (a slow drift and a jump), and a transit on star 0."""
    rng = np.random.default_rng(4)
    t = np.linspace(0, 0.3, 300)
    drift, jump = np.sin(t / 0.05), (t > 0.2).astype(float)
    w = rng.normal(0.02, 0.01, (200, 2))
    noise = rng.normal(0, 0.002, (200, 300))
    transit = -2.5 * np.log10(transit_model(t, T0, DEPTH, DURATION, INGRESS))
    mag = w[:, :1] * drift + w[:, 1:] * jump + noise
    mag[0] += transit
    return t, mag, noise, transit


def depth(t, resid):
    shape = -2.5 * np.log10(transit_model(t, T0, DEPTH, DURATION, INGRESS)) / (1.0857 * DEPTH)
    a = np.column_stack([np.ones_like(t), shape])
    return np.linalg.lstsq(a, resid, rcond=None)[0][1] / 1.0857


def test_tfa_removes_shared_systematics_down_to_the_noise(field):
    t, mag, noise, _ = field
    usable = np.ones(mag.shape, bool)
    resid = mag - mag.mean(axis=1, keepdims=True)
    tpl = detrend.tfa_templates(resid, usable, np.arange(200) > 0, 20)
    clean = resid - detrend.tfa(resid, usable, tpl)
    quiet = np.arange(1, 200)
    before = np.std(resid[quiet], axis=1)
    after = np.std(clean[quiet], axis=1)
    assert np.median(before) > 2 * np.median(after)
    # within 10 % of the white noise (templates carry noise of their own)
    assert np.median(after / np.std(noise[quiet], axis=1)) == pytest.approx(1.0, abs=0.15)


def test_protected_transit_keeps_its_depth_and_unprotected_loses_it(field):
    t, mag, noise, transit = field
    usable = np.ones(mag.shape, bool)
    window = detrend.protect_mask(t, T0, 1.4 * DURATION)
    shield = np.zeros(mag.shape, bool)
    shield[0] = window
    fit_on = usable & ~shield
    resid = mag - np.array([m[f].mean() for m, f in zip(mag, fit_on, strict=True)])[:, None]
    results = {}
    for name, on, exact in (("protected", fit_on, shield.any(axis=1)), ("not", usable, None)):
        tpl = detrend.tfa_templates(resid, on, np.arange(200) > 0, 20)
        results[name] = depth(t, resid[0] - detrend.tfa(resid, on, tpl, exact=exact)[0])
    # The depth the same noise gives without systematics: what detrending must preserve.
    injected = depth(t, noise[0] + transit - np.mean(noise[0] + transit))
    assert results["protected"] == pytest.approx(injected, rel=0.03)
    assert abs(results["not"] - injected) > abs(results["protected"] - injected)
