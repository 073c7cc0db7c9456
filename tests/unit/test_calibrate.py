"""Calibration: overscan, masters, science frames against the simulator's truth."""

import numpy as np
import pytest
from astropy.io import fits

from fieldphot import calibration as cal
from fieldphot import config, io, steps
from fieldphot.flags import Flag

#: The config every key of which has its default.
DEFAULTS = config.with_defaults({"raw_dir": "."})


def test_overscan_modes_follow_a_row_drift():
    rows = np.arange(200)
    drift = 1000 + 5 * (rows / 200) ** 2
    raw = np.tile(drift[:, None], (1, 60)) + np.random.default_rng(0).normal(0, 0.5, (200, 60))
    for mode in ("row", "poly"):
        out = cal.overscan_trim(raw, "[1:40,1:200]", "[45:60,1:200]", mode=mode)
        assert out.shape == (200, 40)
        assert abs(np.mean(out[:20])) < 0.5 and abs(np.mean(out[-20:])) < 0.5, mode
    flat = cal.overscan_trim(raw, "[1:40,1:200]", "[45:60,1:200]", mode="median")
    assert np.mean(flat[-20:]) - np.mean(flat[:20]) > 3  # one median cannot follow it


def test_sigma_clipped_mean_rejects_cosmic_rays():
    rng = np.random.default_rng(1)
    stack = rng.normal(100, 1, (7, 50, 50))
    stack[3, 10, 10] = 5000.0
    out = cal.sigma_clipped_mean(stack)
    assert abs(out[10, 10] - 100) < 2


def test_ccd_equation_error():
    sci, err, mask = cal.calibrate_frame(
        np.full((3, 3), 1000.0),
        100.0,
        5.0,
        np.eye(3, dtype=bool),
        bias=np.full((3, 3), 100.0),
        dark=np.full((3, 3), 0.5),
        flat=np.full((3, 3), 2.0),
    )
    assert sci[0, 1] == pytest.approx((1000 - 100 - 50) / 2)
    assert err[0, 1] == pytest.approx(np.sqrt(850 + 50 + 25) / 2)
    assert (mask[np.eye(3, dtype=bool)] & Flag.SATURATED).all()


def test_section_parsing_rejects_nonsense():
    with pytest.raises(ValueError, match="not a FITS section"):
        cal.parse_section("[1:10]")


def test_calibrated_frames_match_truth(processed):
    """Electrons, flat sky, and the flat/bias/dark masters recover the simulated detector."""
    cfg = processed.params["sim"]
    for frame in processed.frames[::10]:
        night = next((processed.results / "calibrated").iterdir()).name
        sci, err, mask, header = io.read_calibrated(
            processed.results / "calibrated" / night / f"{frame}.fits"
        )
        assert sci.shape == (cfg["ny"], cfg["nx"])  # prescan and overscan are gone
        sky_true = processed.truth_frames.loc[frame, "sky_e"]
        # Flat across the frame: 8x8 block medians of the sky within 1 % of each other.
        blocks = [np.median(b) for r in np.array_split(sci, 8) for b in np.array_split(r, 8, 1)]
        assert np.ptp(np.percentile(blocks, [10, 90])) / np.median(blocks) < 0.01
        assert abs(np.median(blocks) - sky_true) / sky_true < 0.01
        # The error plane is the CCD equation at the sky: sqrt(sky + dark + rn^2).
        expect = np.sqrt(sky_true + cfg["dark_current"] * cfg["exptime"] + cfg["read_noise"] ** 2)
        assert np.median(err) == pytest.approx(expect, rel=0.03)
        # Pure-sky pixels (> 3 FWHM from every simulated star, faint ones included) scatter
        # as the ERR plane says.
        truth = processed.truth_fluxes[processed.truth_fluxes["frame"] == frame]
        yy, xx = np.mgrid[0 : sci.shape[0], 0 : sci.shape[1]]
        near = np.zeros(sci.shape, bool)
        r = 3 * processed.truth_frames.loc[frame, "fwhm"]
        for x, y in truth[["x", "y"]].to_numpy():
            ya, xa = max(int(y - r), 0), max(int(x - r), 0)
            sl = (slice(ya, max(int(y + r) + 2, ya)), slice(xa, max(int(x + r) + 2, xa)))
            near[sl] |= (xx[sl] - x) ** 2 + (yy[sl] - y) ** 2 < r**2
        sky = (mask == 0) & ~near
        assert sky.sum() > 0.2 * sky.size
        v, e = sci[sky], err[sky]
        robust_std = 1.4826 * np.median(np.abs(v - np.median(v)))
        assert robust_std == pytest.approx(np.median(e), rel=0.03)
        # Outliers (cosmic-ray pixels too faint for L.A.Cosmic) are rare.
        assert np.mean(np.abs(v - np.median(v)) > 6 * e) < 2e-3
        assert header["FP_FRAME"] == frame and header["BUNIT"] == "electron"
        assert any(header.get(f"FP_IN{i:03d}", "").startswith("flat_") for i in range(4))


def test_master_on_disk_equals_master_in_memory(tmp_path):
    from fieldphot import manifest, runner, stages, synthetic

    night = synthetic.simulate_night(
        tmp_path / "n",
        synthetic.SimConfig(nx=64, ny=48, n_science=1, n_bias=5, n_dark=1, n_flat=1, seed=2),
    )
    m = stages.manifest(runner.raw_files(night.raw_dir), tmp_path / "m.parquet")
    rows = m[m["kind"] == "bias"].to_dict("records")
    params = steps.master_params(DEFAULTS)
    stages.master("bias", rows, tmp_path / "mem" / "bias.fits", **params)
    params["memory_mb"] = 0.01  # forces the scratch stack, 1-row bands
    stages.master("bias", rows, tmp_path / "disk" / "bias.fits", **params)
    a, _, ha = io.read_master(tmp_path / "mem" / "bias.fits")
    b, _, hb = io.read_master(tmp_path / "disk" / "bias.fits")
    assert np.allclose(a, b, atol=1e-3) and ha["NCOMBINE"] == 5
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["bias.fits"]
    # The master bias recovers the simulated bias structure (in e-) to its noise.
    assert hb["FP_NOISE"] == pytest.approx(6.5 / np.sqrt(5), rel=0.15)
    assert manifest.masters_table(m)["kind"].tolist() == ["bias", "dark", "flat"]


@pytest.mark.parametrize("extensions", [True, False], ids=["one-extension-each", "one-image"])
def test_multi_amplifier_frames_come_out_seamless(tmp_path, extensions):
    """Two amplifiers with 12 % different gains and 120 ADU different bias levels, written
    as one extension per amplifier (DETSEC cards) or side by side in one image (described
    by the instrument profile's ``amplifiers`` list)."""
    import yaml

    from fieldphot import headers, runner, synthetic, validation

    cfg = synthetic.SimConfig(
        nx=512,
        ny=384,
        n_science=3,
        n_bias=5,
        n_dark=3,
        n_flat=5,
        amplifiers=2,
        amp_extensions=extensions,
        seed=41,
    )
    night = synthetic.simulate_night(tmp_path / "night", cfg)
    config = yaml.safe_load(night.config.read_text())
    if not extensions:
        profile = yaml.safe_load((headers.PROFILE_DIR / "generic.yaml").read_text())
        profile["amplifiers"] = [
            {
                "trimsec": f"TRIMSEC{k}",
                "biassec": f"BIASSEC{k}",
                "detsec": f"DETSEC{k}",
                "gain": f"GAIN{k}",
            }
            for k in (1, 2)
        ]
        (tmp_path / "cam.yaml").write_text(yaml.safe_dump(profile))
        config["instrument"] = str(tmp_path / "cam.yaml")
    with fits.open(sorted(night.raw_dir.iterdir())[-1]) as hdul:
        assert len(hdul) == (3 if extensions else 1)
    runner.run_night(config, tmp_path / "results")
    for path in sorted((tmp_path / "results" / "calibrated").rglob("*.fits")):
        sci, err, mask, _ = io.read_calibrated(path)
        assert sci.shape == (384, 512)
        w = 256
        left, right = sci[:, w - 8 : w].ravel(), sci[:, w : w + 8].ravel()
        sky = np.median(sci)
        lo, hi = sky - 3 * np.median(err), sky + 3 * np.median(err)  # sky pixels only
        left, right = left[(left > lo) & (left < hi)], right[(right > lo) & (right < hi)]
        step = np.mean(right) - np.mean(left)
        noise = np.hypot(np.std(left) / np.sqrt(left.size), np.std(right) / np.sqrt(right.size))
        # No step between the amplifiers above the noise (raw: 120 ADU and 12 % in gain).
        assert abs(step) < 3 * noise, (step, noise)
    truth = validation.Truth(night.root)
    zp = validation.zeropoint_offsets(tmp_path / "results", truth)
    assert len(zp) == 3 and zp.abs().max() < 0.02


def test_nonlinear_and_saturated_pixels_judged_in_raw_adu():
    raw = np.hstack([np.array([[100.0, 50000.0, 61000.0, 65535.0]]), np.full((1, 2), 100.0)])
    amp = {
        "data": raw,
        "trimsec": "[1:4,1:1]",
        "biassec": "[5:6,1:1]",
        "gain": 2.0,
        "saturate": 65000.0,
        "nonlinear": 60000.0,
    }
    e, bits = cal.assemble([amp], "median")
    assert e[0, 1] == (50000 - 100) * 2.0
    assert bits[0].tolist() == [0, 0, Flag.NONLINEAR, Flag.NONLINEAR | Flag.SATURATED]
    _, _, mask = cal.calibrate_frame(e, 1.0, 5.0, bits)
    assert mask[0].tolist() == bits[0].tolist()


def test_scratch_stack_reads_only_what_is_asked(tmp_path):
    with io.scratch_stack(tmp_path / "m.fits", (4, 6, 5)) as stack:
        for i in range(4):
            stack[i] = np.full((6, 5), float(i))
        assert stack[2].shape == (6, 5) and (stack[2] == 2).all()
        band = stack[:, 1:3]
        assert band.shape == (4, 2, 5) and (band[:, 0, 0] == [0, 1, 2, 3]).all()


def test_cosmic_rays_cleaned_in_bands_as_in_one_piece():
    """Overlapping bands (and cleaning in place) give exactly the whole-frame result."""
    rng = np.random.default_rng(3)
    img = rng.normal(200.0, 12.0, (300, 180)).astype(np.float32)
    yy, xx = np.mgrid[:300, :180]
    for _ in range(40):  # stars, which L.A.Cosmic must leave alone
        x, y, f = rng.uniform(0, 180), rng.uniform(0, 300), rng.uniform(500, 5e4)
        img += (f * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.5)).astype(np.float32)
    hits = rng.integers(0, 300, 200), rng.integers(0, 180, 200)
    img[hits] += rng.uniform(300, 3000, 200).astype(np.float32)
    mask = np.zeros(img.shape, np.int32)
    whole, whole_mask = cal.clean_cosmic_rays(img, mask, 12.0, 1e9, max_bytes=1e9)
    bands, bands_mask = cal.clean_cosmic_rays(img, mask, 12.0, 1e9, max_bytes=40 * 180 * 4)
    inplace, inplace_mask = img.copy(), mask.copy()
    cal.clean_cosmic_rays(
        inplace, inplace_mask, 12.0, 1e9, max_bytes=40 * 180 * 4, out=(inplace, inplace_mask)
    )
    assert (whole_mask[hits] & Flag.COSMIC_RAY).mean() > 0.9
    for image, m in ((bands, bands_mask), (inplace, inplace_mask)):
        assert np.array_equal(image, whole) and np.array_equal(m, whole_mask)


def test_offset_of_a_camera_without_bias_or_overscan_is_estimated(tmp_path):
    """A night with no calibration frames from a camera without overscan (the 6-inch
    transit night's): its 1,800 e- offset would stay in the data and make the errors
    2-4 x the real scatter. It is estimated from the sky and removed: the error plane
    matches the sky's true noise. (Without a flat, pixel-to-pixel response counts as
    noise and lowers the offset found by its variance; the simulated camera has none.)"""
    from fieldphot import io, runner, stages, synthetic

    cfg = synthetic.SimConfig(
        nx=256, ny=256, n_science=1, n_bias=0, n_dark=0, n_flat=0, seed=8, prnu=0.0
    )
    night = synthetic.simulate_night(tmp_path / "n", cfg)
    raw = next(night.raw_dir.glob("*.fits"))
    with fits.open(raw) as hdul:  # cut the prescan and overscan away, drop their cards
        h = hdul[0].header.copy()
        rows, cols = cal.parse_section(h["TRIMSEC"])
        data = hdul[0].data[rows, cols].astype(np.uint16)
    for key in ("TRIMSEC", "BIASSEC"):
        del h[key]
    for key in ("BZERO", "BSCALE"):
        h.remove(key, ignore_missing=True)
    fits.PrimaryHDU(data, h).writeto(raw, overwrite=True)
    m = stages.manifest(runner.raw_files(night.raw_dir), tmp_path / "m.parquet", "", None, 0)
    row = m.iloc[0].to_dict()
    steps.run(
        "calibrate",
        {"raw": row["path"]},
        tmp_path / "c.fits",
        steps.frame_params("calibrate", DEFAULTS, row),
    )
    sci, err, mask, header = io.read_calibrated(tmp_path / "c.fits")
    offset_e = cfg.bias_level * cfg.gain
    assert header["FP_PED"] == pytest.approx(offset_e, rel=0.04)
    true_sky = night.frames["sky_e"].iloc[0] + cfg.dark_current * cfg.exptime
    noise = np.sqrt(true_sky + cfg.read_noise**2)
    assert np.median(err[mask == 0]) / noise == pytest.approx(
        1.0, abs=0.05
    )  # 1.8 with the offset left in


@pytest.mark.parametrize("n_flat", [4, 0], ids=["flat-pairs", "science-pairs"])
def test_gain_and_saturation_measured_when_the_headers_lack_them(tmp_path, n_flat):
    """A camera that writes no GAIN and no SATURATE: photon transfer on consecutive
    frame pairs gives the gain (true 1.8 e-/ADU) with its error, the pile-up of star
    peaks the level where the simulated converter clips them (65535 ADU)."""
    from fieldphot import runner, stages, synthetic

    cfg = synthetic.SimConfig(
        nx=256, ny=256, n_science=8, n_bias=3, n_dark=2, n_flat=n_flat, seed=4
    )
    night = synthetic.simulate_night(tmp_path / "n", cfg)
    for p in night.raw_dir.glob("*.fits"):
        with fits.open(p, mode="update") as hdul:
            for hdu in hdul:
                for key in ("GAIN", "SATURATE"):
                    hdu.header.remove(key, ignore_missing=True)
    m = stages.manifest(runner.raw_files(night.raw_dir), tmp_path / "m.parquet")
    assert not "".join(m["guessed"])  # both measured: nothing left to the profile's defaults
    assert m["gain"].iloc[0] == pytest.approx(cfg.gain, rel=0.03 if n_flat else 0.05)
    assert 0 < m["gain_err"].iloc[0] < 0.1
    assert 63000 < m["saturate"].iloc[0] <= 65535
    notes = " ".join(m.attrs["notes"])
    assert "photon transfer" in notes and "pile-up" in notes
