"""The plate-solving ladder against the simulator's truth: asterism matching from a
pointing hint, same-pointing reuse, SIP distortion, and giving up cleanly."""

import numpy as np
import yaml

from fieldphot import io, synthetic, validation
from fieldphot import solve as sol
from fieldphot.flags import Flag
from fieldphot.runner import run_night


def test_hint_solves_any_rotation_parity_few_percent_scale_and_half_field_offsets():
    rng = np.random.default_rng(42)
    results = []
    for k in range(40):
        shape = (int(rng.choice([512, 1024])), int(rng.choice([768, 1024])))
        src, ref, wcs = synthetic.star_field(
            rng,
            shape,
            pixel_scale=rng.uniform(0.4, 2.5),
            rotation_deg=rng.uniform(0, 360),
            flip=bool(k % 2),
            distortion_px=rng.uniform(0, 1.5),
            stars_per_arcmin2=rng.choice([1.0, 3.0, 8.0]),
        )
        hints = synthetic.pointing_hint(
            wcs, shape, rng, rng.uniform(0, 0.5), rng.uniform(-0.05, 0.05)
        )
        fitted, matched, info = sol.solve_frame(src, ref, shape, hints, methods=["hint"])
        assert info["status"] == "ok", info["reason"]
        assert info["method"] == "hint" and info["n_match"] >= 10
        results.append((validation.star_field_rms(fitted, src, ref), info["sip_degree"]))
    rms = np.array([r for r, _ in results])
    with_sip = np.array([s > 0 for _, s in results])
    # Where there are enough stars for the distortion terms, positions are good to
    # well under 0.1 px; with too few, an unmodelled ~1 px corner distortion remains.
    assert with_sip.sum() >= 30 and rms[with_sip].max() < 0.1, rms
    assert np.median(rms) < 0.05


def test_sip_recovers_an_injected_distortion():
    rng = np.random.default_rng(7)
    shape = (1024, 1024)
    src, ref, wcs = synthetic.star_field(
        rng, shape, 1.0, 20.0, distortion_px=4.0, stars_per_arcmin2=6.0, centroid_px=0.03
    )
    hints = {"wcs": wcs}
    fitted, _, info = sol.solve_frame(src, ref, shape, hints, methods=["header"])
    assert info["method"] == "header" and info["sip_degree"] == 3 and info["n_match"] > 100
    assert not info.get("kept")  # a 4 px distortion is far from a good header WCS
    assert validation.star_field_rms(fitted, src, ref) < 0.05
    tan_only, _, _ = sol.solve_frame(
        src, ref, shape, hints, methods=["header"], sip_degree=0, max_rms_arcsec=10.0
    )
    assert validation.star_field_rms(tan_only, src, ref) > 0.3  # the distortion is real


def test_a_good_header_wcs_is_kept_as_it_is():
    rng = np.random.default_rng(3)
    shape = (768, 768)
    src, ref, wcs = synthetic.star_field(rng, shape, 0.8, 65.0, stars_per_arcmin2=4.0)
    fitted, matched, info = sol.solve_frame(src, ref, shape, {"wcs": wcs})
    assert info["method"] == "header" and info["kept"] and fitted is wcs
    assert len(matched) == info["n_match"] > 50 and info["rms_arcsec"] < 0.1


def test_neighbour_solution_reused_and_survives_a_meridian_flip():
    rng = np.random.default_rng(5)
    shape = (1024, 1024)
    _, _, before = synthetic.star_field(np.random.default_rng(9), shape, 1.2, 10.0)
    # The same pointing a little later: drifted by 80", or turned by 180 deg.
    for rotation, expected_drift in ((10.0, 80.0), (190.0, 0.0)):
        src, ref, wcs = synthetic.star_field(
            rng, shape, 1.2, rotation, ra=150.0 + expected_drift / 3600 / np.cos(0.35)
        )
        hints = {"wcs": None, "neighbour": before}
        fitted, _, info = sol.solve_frame(src, ref, shape, hints)
        assert info["method"] == "neighbour", info["reason"]
        assert validation.star_field_rms(fitted, src, ref) < 0.1


def test_too_few_stars_end_unsolved_with_every_reason():
    rng = np.random.default_rng(1)
    src, ref, wcs = synthetic.star_field(rng, (512, 512), 0.5, 0.0, stars_per_arcmin2=0.2)
    src = src.head(4)
    hints = {"wcs": None, "ra": 150.0, "dec": 20.0, "pixel_scale": 0.5}
    fitted, matched, info = sol.solve_frame(
        src, ref, (512, 512), hints, methods=["header", "neighbour", "hint"]
    )
    assert fitted is None and info["status"] == "unsolved" and matched.empty
    assert [t.split(":")[0] for t in info["tried"]] == ["header", "neighbour", "hint"]
    assert "no WCS in the header" in info["reason"] and "asterism" in info["reason"]


def test_a_night_without_wcs_flipped_and_mispointed_is_solved(tmp_path):
    """No WCS cards, a mirrored camera, RA/Dec 150" (half the field) off and a focal
    length 3 % wrong: the first frame is solved from the hint, the rest from it."""
    cfg = synthetic.SimConfig(
        nx=512,
        ny=512,
        n_science=5,
        n_bias=3,
        n_dark=3,
        n_flat=3,
        seed=21,
        write_wcs=False,
        flip=True,
        rotation_deg=123.0,
        pointing_error_arcsec=150.0,
        focal_length_error=0.03,
    )
    night = synthetic.simulate_night(tmp_path, cfg)
    run_night(yaml.safe_load(night.config.read_text()), tmp_path / "results")
    methods = []
    for path in sorted((tmp_path / "results" / "astrometry").rglob("*.parquet")):
        _, meta = io.read_table(path, columns=[])
        assert meta["status"] == "ok", meta["reason"]
        methods.append(meta["astrometry"]["method"])
    assert methods == ["hint"] + ["neighbour"] * 4
    rms = validation.astrometry_rms(tmp_path / "results", validation.Truth(tmp_path))
    assert len(rms) == 5 and rms.max() < 0.1, rms


def test_a_15_degree_field_with_strong_distortion_is_solved_over_the_whole_frame():
    """A camera lens's field (53"/px, 15 deg on 1024 px) with 40 px of radial distortion
    at the corners: the offset search reaches a few pixels, every star on the frame is
    matched in the end (not only the brightest few hundred), and the SIP order rises to
    the odd order the inverse distortion needs."""
    rng = np.random.default_rng(11)
    shape = (1024, 1024)
    src, ref, wcs = synthetic.star_field(
        rng, shape, 52.7, 8.0, distortion_px=40.0, stars_per_arcmin2=0.004, centroid_px=0.05
    )
    for method, hints in (
        ("header", {"wcs": wcs}),
        ("hint", synthetic.pointing_hint(wcs, shape, rng, 0.02, 0.01)),
    ):
        fitted, matched, info = sol.solve_frame(src, ref, shape, hints, methods=[method])
        assert info["status"] == "ok", info["reason"]
        assert info["sip_degree"] == 5 and info["n_match"] > 1000, info
        assert validation.star_field_rms(fitted, src, ref) < 0.1
        # every corner is held, not only the centre
        real = src[src["id"] > 0]
        sky = ref.set_index("id").loc[real["id"]]
        x, y = fitted.world_to_pixel_values(sky["ra"].to_numpy(), sky["dec"].to_numpy())
        err = np.hypot(x - real["x_true"], y - real["y_true"])
        corner = np.hypot(real["x_true"] - 511.5, real["y_true"] - 511.5) > 600
        assert corner.sum() > 50 and np.sqrt(np.mean(err[corner] ** 2)) < 0.1
    cubic, _, _ = sol.solve_frame(src, ref, shape, hints, methods=["hint"], sip_max_degree=3)
    assert validation.star_field_rms(cubic, src, ref) > 0.1  # order 3 leaves 0.18 px


def test_a_wide_field_night_with_saturated_bright_stars_is_solved(tmp_path):
    """The whole path on a simulated 15 deg night whose few hundred brightest catalog
    stars are all saturated (a camera lens at 53"/px): every frame solved to < 0.1 px
    against the truth, and measured."""
    cfg = synthetic.SimConfig(
        nx=1024,
        ny=1024,
        n_science=2,
        n_bias=3,
        n_dark=3,
        n_flat=3,
        pixel_scale=52.7,
        distortion_px=40.0,
        stars_per_arcmin2=0.004,
        mag_min=4.0,
        mag_max=11.0,
        exptime=30.0,
        cadence=120.0,
        fwhm_min=2.0,
        fwhm_max=2.4,
        zp0=19.0,
        sky_mag=20.0,
        jitter_px=2.0,
        wcs_shift_px=3.0,
        ra=80.0,
        dec=40.0,
    )
    night = synthetic.simulate_night(tmp_path, cfg)
    run_night(yaml.safe_load(night.config.read_text()), tmp_path / "results")
    saturated = 0
    for path in sorted((tmp_path / "results" / "sources").rglob("*.parquet")):
        src, _ = io.read_table(path, columns=["flags"])
        saturated += int((src["flags"] & int(Flag.SATURATED) != 0).sum())
    assert saturated > 400  # the brightest catalog stars are not on the detections' list
    for path in sorted((tmp_path / "results" / "astrometry").rglob("*.parquet")):
        _, meta = io.read_table(path, columns=[])
        assert meta["status"] == "ok", meta["reason"]
        assert meta["astrometry"]["sip_degree"] == 5
    rms = validation.astrometry_rms(tmp_path / "results", validation.Truth(tmp_path))
    assert len(rms) == 2 and rms.max() < 0.1, rms
    for path in sorted((tmp_path / "results" / "catalogs").rglob("*.parquet")):
        cat, meta = io.read_table(path, columns=["mag"])
        assert meta["status"] == "ok" and cat["mag"].notna().sum() > 1000, meta.get("reason")
