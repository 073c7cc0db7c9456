"""PSF photometry (``photometry.mode: psf``) against apertures on a crowded simulated
field: a star beside a neighbour is measured, not merged with it."""

import pytest
import yaml

from fieldphot import synthetic, validation
from fieldphot.runner import run_night


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    root = tmp_path_factory.mktemp("crowded")
    night = synthetic.simulate_night(root, synthetic.CROWDED_NIGHT)
    truth = validation.Truth(root)
    out = {}
    for mode in ("optimal", "psf"):
        cfg = yaml.safe_load(night.config.read_text())
        cfg["photometry"] = {"mode": mode}
        run_night(cfg, root / mode, processes=2)
        out[mode] = validation.crowding_accuracy(root / mode, truth)
    return out


def test_psf_removes_most_of_the_confusion_bias(crowded):
    ap, psf = crowded["optimal"]["crowded"], crowded["psf"]["crowded"]
    assert ap["n"] > 100 and psf["n"] > 100
    assert abs(ap["median"]) > 0.02  # apertures take in their neighbours' light
    assert abs(psf["median"]) < 0.3 * abs(ap["median"])
    assert psf["scatter"] < 0.5 * ap["scatter"]


def test_psf_matches_apertures_on_isolated_stars(crowded):
    ap, psf = crowded["optimal"]["isolated"], crowded["psf"]["isolated"]
    assert psf["n"] >= 5
    assert abs(psf["median"]) < 0.01
    assert psf["scatter"] < 1.5 * ap["scatter"] + 0.002
