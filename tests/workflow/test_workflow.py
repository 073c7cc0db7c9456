"""`snakemake` end to end on a small simulated night in a temporary folder."""

import hashlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from conftest import job_counts  # tests/ is on the path (its conftest)

from fieldphot import io, synthetic, validation, workflow_files
from fieldphot.cli import main as fieldphot_main
from fieldphot.cli import snakemake_command

SMALL_NIGHT = synthetic.SimConfig(
    nx=384,
    ny=384,
    n_science=6,
    n_bias=3,
    n_dark=3,
    n_flat=3,
    seed=21,
    stars_per_arcmin2=9.0,
    targets=True,
)

pytestmark = pytest.mark.workflow


def snakemake(workdir, config, *args):
    cmd = snakemake_command(config, workdir, 2, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def table(path) -> pd.DataFrame:
    return Table.read(path).to_pandas()


def checksums(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wf_night")
    night = synthetic.simulate_night(root / "night", SMALL_NIGHT)
    cfg = yaml.safe_load(night.config.read_text())
    profile = night.root / "camera.yaml"  # the user's own copy of the generic profile
    shutil.copy(workflow_files.INSTRUMENTS / "generic.yaml", profile)
    cfg = {**cfg, "debug": True, "instrument": str(profile)}
    night.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    # Header text reaches the step commands (in the manifest row): it must stay quoted.
    first = sorted(night.raw_dir.iterdir())[-1]
    fits.setval(first, "OBJECT", value='it\'s "x"; $(touch PWNED) `touch PWNED`')
    # A real night holds junk: a truncated FITS file and a text file.
    good = sorted(night.raw_dir.iterdir())[-1].read_bytes()
    (night.raw_dir / "broken.fits").write_bytes(good[: len(good) // 3])
    (night.raw_dir / "observing-log.txt").write_text("clouds at 04:10\n")
    before = checksums(night.raw_dir)
    work = root / "work"
    work.mkdir()
    proc = snakemake(work, night.config)
    return night, work, proc, before


def test_night_completes_despite_a_broken_file(run):
    night, work, proc, before = run
    assert proc.returncode == 0, proc.stderr[-3000:]
    m, _ = io.read_table(work / "results" / "manifest.parquet")
    broken = m[m["frame"] == "broken"].iloc[0]
    assert broken["status"] == "bad" and "broken.fits" in broken["reason"]
    assert "observing-log" not in set(m["frame"])  # not a FITS name: never read
    assert checksums(night.raw_dir) == before  # the raw folder is untouched
    assert not [p for p in night.root.parent.rglob("PWNED")] and not Path("PWNED").exists()
    assert (work / "logs" / "manifest" / "manifest.log").read_text().count("broken.fits") >= 1


def test_outputs_exist_and_agree_with_truth(run):
    night, work, proc, _ = run
    res = work / "results"
    lc = validation.light_curves(res)
    summary, _ = io.read_table(res / "lightcurves" / "summary.parquet")
    assert set(lc["frame"]) == set(night.frames["frame"])
    assert len(summary) >= 20 and (res / "lightcurves" / "rms_mag.png").stat().st_size > 1000
    truth = night.fluxes.set_index(["frame", "id"])["mag_true"]
    for frame in night.frames["frame"]:
        cat, meta = io.read_table(next(res.glob(f"catalogs/*/{frame}.parquet")))
        assert meta["status"] == "ok" and meta["astrometry"]["rms_px"] < 0.3
        assert meta["fieldphot_version"] and meta["config"]["min_stars"] == 5
        clean = cat[(cat["flags"] == 0) & (cat["snr"] > 50) & np.isfinite(cat["mag_cat"])]
        d = clean["mag"].to_numpy() - truth.loc[frame].loc[clean["id"]].to_numpy()
        assert len(d) >= 5 and abs(np.median(d)) < 0.02, f"{frame}: {np.median(d):+.4f}"
    for rule in ("calibrate", "extract", "solve", "photometer", "zeropoint"):
        logs = list((work / "logs" / rule).rglob("*.log"))
        assert len(logs) == len(night.frames)
        # a local run's steps run in forks of the warm worker (fieldphot.worker)
        assert all(f"{rule} in a fork of the warm worker" in p.read_text() for p in logs)
    # Long steps log their progress.
    n = len(night.frames)
    (night_log,) = (work / "logs/lightcurves").glob("2*.log")
    assert f"catalogs gathered: {n} of {n} (100 %)" in night_log.read_text()


def test_export_holds_every_calibrated_measurement_with_units(run):
    night, work, _, _ = run
    res = work / "results"
    t = Table.read(res / "export" / "catalog.ecsv")
    cats = [io.read_table(p) for p in sorted(res.glob("catalogs/*/*.parquet"))]
    rows = pd.concat([c for c, m in cats if m["status"] == "ok"], ignore_index=True)
    assert len(t) == len(rows) and set(t["frame"]) == set(night.frames["frame"])
    assert str(t["mag"].unit) == "mag" and str(t["flux"].unit) == "electron"
    assert t.meta["magnitude_system"] == cats[0][1]["magnitude_system"]
    key = ["frame", "id"]
    merged = t.to_pandas().merge(rows, on=key, suffixes=("_export", "_frame"))
    assert len(merged) == len(rows)
    for col in ("mag", "mag_err", "ra", "bjd_tdb"):
        np.testing.assert_allclose(merged[f"{col}_export"], merged[f"{col}_frame"], equal_nan=True)
    assert (work / "logs" / "export" / "export.log").exists()


def test_second_run_has_nothing_to_do(run):
    """Also when started by the environment's other name for Python (``python`` for
    ``python3``): the step commands name the interpreter one way."""
    night, work, _, _ = run
    proc = snakemake(work, night.config, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    here = Path(sys.executable)
    other = next(
        (here.parent / n for n in ("python", "python3") if (here.parent / n).name != here.name),
    )
    if not other.exists():
        pytest.skip(f"no {other}")
    cmd = [str(other), *snakemake_command(night.config, work, 2, "--dry-run")[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_a_zeropoint_setting_reruns_only_the_zeropoints_and_what_follows(run, tmp_path):
    night, work, _, _ = run
    cfg = yaml.safe_load(night.config.read_text())
    cfg["zeropoint"] = {**cfg.get("zeropoint", {}), "clip_sigma": 2.5}
    changed = tmp_path / "config.yaml"
    changed.write_text(yaml.safe_dump(cfg, sort_keys=False))  # a user edits one value
    dry = snakemake(work, changed, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert job_counts(dry.stdout + dry.stderr) == {
        "all": 1,
        "export": 1,
        "lightcurves": 1,
        "night_lightcurves": 1,
        "report_pages": 1,
        "zeropoint": len(night.frames),
    }


#: What follows each per-frame step, through the end of the night.
AFTER_CALIBRATE = {"calibrate", "extract", "solve", "starlist"}
AFTER_PHOTOMETER = {"photometer", "frame_image", "zeropoint", "night_lightcurves", "lightcurves"}
AFTER_PHOTOMETER |= {"report_pages", "export"}


@pytest.mark.parametrize(
    ("setting", "value", "scheduled"),
    [
        # how, not what: nothing reruns
        ("calibration.combine_memory_mb", 2048, set()),
        ("reference_catalog.timeout_s", 99, set()),
        ("reference_catalog.cache_dir", "elsewhere", set()),
        ("lightcurves.aavso_obscode", "XYZ", {"lightcurves", "report_pages"}),
        ("lightcurves.variable_factor", 4.0, {"night_lightcurves", "lightcurves", "report_pages"}),
        ("export.t0_mjd", 60384.0, {"export"}),
        ("photometry.min_snr", 4.0, AFTER_PHOTOMETER),
        ("starlist.min_snr", 6.0, {"starlist"} | AFTER_PHOTOMETER),
        ("solve.max_rms_arcsec", 2.0, {"solve", "starlist"} | AFTER_PHOTOMETER),
        ("extract.thresh", 6.0, {"extract", "solve", "starlist"} | AFTER_PHOTOMETER),
        ("calibration.cosmic_rays.sigclip", 5.0, AFTER_CALIBRATE | AFTER_PHOTOMETER),
        ("calibration.hot_pixel_nsigma", 9.0, {"master"} | AFTER_CALIBRATE | AFTER_PHOTOMETER),
    ],
)
def test_a_setting_reruns_only_the_steps_that_read_it(run, setting, value, scheduled):
    """Issue 21: a rule's params are what its step reads (fieldphot.steps), so a change
    reruns those steps and what depends on their products, nothing else. (The user edits
    the config file the night ran with: the report's rerun hints name that file.)"""
    night, work, _, _ = run
    cfg = yaml.safe_load(night.config.read_text())
    *sections, key = setting.split(".")
    where = cfg
    for section in sections:
        where = where.setdefault(section, {})
    where[key] = value
    original = night.config.read_text()
    night.config.write_text(yaml.safe_dump(cfg, sort_keys=False))  # a user edits one value
    try:
        dry = snakemake(work, night.config, "--dry-run")
    finally:
        night.config.write_text(original)
    assert dry.returncode == 0, dry.stderr[-2000:]
    if not scheduled:
        assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]
        return
    assert set(job_counts(dry.stdout + dry.stderr)) - {"all"} == scheduled


def test_editing_the_instrument_profile_remakes_the_manifest(run):
    """The profile is a declared input of the manifest (a gain edited in it is read)."""
    night, work, _, _ = run
    profile = Path(yaml.safe_load(night.config.read_text())["instrument"])
    before = profile.stat()
    profile.write_text(profile.read_text().replace("gain: 1.0", "gain: 1.1"))
    try:
        dry = snakemake(work, night.config, "--dry-run")
        assert "manifest" in job_counts(dry.stdout + dry.stderr), dry.stdout[-2000:]
    finally:
        profile.write_text(profile.read_text().replace("gain: 1.1", "gain: 1.0"))
        os.utime(profile, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "Nothing to be done" in snakemake(work, night.config, "--dry-run").stdout


def test_deleting_one_photometry_reruns_only_its_downstream(run):
    night, work, _, _ = run
    frame = night.frames["frame"].iloc[2]
    target = next((work / "results").glob(f"photometry/*/{frame}.parquet"))
    others = {p: p.stat().st_mtime_ns for p in (work / "results").glob("catalogs/*/*.parquet")}
    target.unlink()
    dry = snakemake(work, night.config, "--dry-run")
    assert job_counts(dry.stdout + dry.stderr) == {
        "all": 1,
        "export": 1,
        "lightcurves": 1,
        "night_lightcurves": 1,
        "frame_image": 1,  # the config sets debug: true
        "photometer": 1,
        "report_pages": 1,
        "zeropoint": 1,
    }
    proc = snakemake(work, night.config)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert target.exists()
    changed = [p for p, t in others.items() if p.stat().st_mtime_ns != t]
    assert [p.stem for p in changed] == [frame]


def test_a_run_killed_midway_and_rerun_gives_the_same_results(run, tmp_path):
    night, reference, _, _ = run
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "fieldphot.cli", "run", str(night.config), "--workdir", str(work)]
    cmd += ["--cores", "2"]
    first = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)
    catalogs = work / "results" / "catalogs"
    deadline = time.monotonic() + 600
    while len(list(catalogs.glob("*/*.parquet"))) < 2:
        assert first.poll() is None and time.monotonic() < deadline, "the run ended before the kill"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the run, its jobs and its worker, as a scheduler does
    first.wait()
    assert len(list(catalogs.glob("*/*.parquet"))) < len(night.frames)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "removing the lock a killed run left" in rerun.stdout
    for product in (
        "catalogs/*/*.parquet",
        "lightcurves/*.parquet",
        "lightcurves/nights/*.parquet",
        "export/*.ecsv",
    ):
        ours = sorted((work / "results").glob(product))
        theirs = sorted((reference / "results").glob(product))
        assert [p.name for p in ours] == [p.name for p in theirs] and ours
        for a, b in zip(ours, theirs, strict=True):
            read = (lambda p: io.read_table(p)[0]) if a.suffix == ".parquet" else table
            pd.testing.assert_frame_equal(read(a), read(b))


#: Reads a Snakemake report's front page, then clicks through each category and each
#: file's first button; records what the page then shows (its text, decoded PNG sizes,
#: iframes) in the body's data-probe attribute.
PROBE = """<script>
const sleep = ms => new Promise(r => setTimeout(r, ms));
const byText = t => [...document.querySelectorAll("a,button,li,span,div,td,p")].find(
  e => e.textContent.trim() === t && e.children.length === 0);
(async () => {
  await sleep(1500);
  const seen = {};
  const front = [...document.querySelectorAll("h1")].find(
    h => h.textContent.trim() === "The night");
  seen["front page"] = front ? {
    text: front.parentElement.textContent,
    png: [...front.parentElement.querySelectorAll("img")].map(i => i.naturalWidth),
  } : "not shown";
  for (const [cat, files] of Object.entries(WANTED)) {
    byText("Results")?.click(); await sleep(300);
    if (!byText(cat)) { seen[cat] = "no category"; continue; }
    byText(cat).click(); await sleep(500);
    for (const f of files) {
      const cell = byText(f);
      if (!cell) { seen[f] = "not listed"; continue; }
      cell.parentElement.querySelector("a,button").click(); await sleep(1000);
      seen[f] = {
        png: [...document.querySelectorAll("img")]
          .filter(i => i.src.startsWith("data:image/png")).map(i => i.naturalWidth),
        html: [...document.querySelectorAll("iframe")]
          .filter(i => i.src.startsWith("data:text/html")).length,
      };
      byText("Results")?.click(); await sleep(300); byText(cat)?.click(); await sleep(300);
    }
  }
  document.body.setAttribute("data-probe", JSON.stringify(seen));
})();
</script>"""


def test_the_report_renders_every_section_in_chromium(run, tmp_path):
    night, work, _, _ = run
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("FIELDPHOT_REQUIRE_CHROMIUM"):
            pytest.fail("FIELDPHOT_REQUIRE_CHROMIUM is set but chromium is not installed")
        pytest.skip("headless Chromium (Debian package chromium) is not installed")
    report = tmp_path / "report.html"
    proc = snakemake(work, night.config, "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-2000:]
    images = sorted((work / "results" / "debug").glob("*/*.png"))  # debug: true
    assert len(images) == len(night.frames)
    wanted = {
        "Frames": ["results/report/diagnostics.png", "results/report/problems.html"],
        "Frame images": [str(images[0].relative_to(work))],
        "Light curves": [
            "results/lightcurves/rms_mag.png",
            "results/report/targets.png",
            "results/report/comparisons.png",
            "results/report/field.png",
        ],
    }
    page = report.read_text()
    probe = PROBE.replace("WANTED", json.dumps(wanted))
    probed = tmp_path / "probed.html"
    probed.write_text(page[: page.rfind("</body>")] + probe + "</body></html>")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        + ["--disable-background-networking", "--virtual-time-budget=60000", "--dump-dom"]
        + [probed.as_uri()],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the report's page never finished rendering"
    seen = json.loads(html.unescape(found.group(1)))
    # The report opens on the night's summary and its diagnostics (issue 26).
    front = seen["front page"]
    assert isinstance(front, dict), front
    assert re.search(r"\d+ frames: \d+ calibrated, .* FWHM", front["text"]), front["text"]
    assert front["png"] and max(front["png"]) > 300, front
    for files in wanted.values():
        for f in files:
            assert isinstance(seen.get(f), dict), f"{f}: {seen}"
            shown = seen[f]
            assert shown["html"] == 1 if f.endswith(".html") else max(shown["png"]) > 300, f
    # The pages' content: the night's one broken file with what to do, and both simulated
    # targets' light curves.
    problems = (work / "results" / "report" / "problems.html").read_text()
    assert "Failed and flagged frames (1)" in problems
    assert "<td>broken</td><td>bad</td>" in problems and "fix or remove the raw file" in problems
    lc = validation.light_curves(work / "results")
    targets = yaml.safe_load(night.config.read_text())["targets"]
    assert set(lc["target"]) - {""} == {t["name"] for t in targets}
    # Without Snakemake: `fieldphot report`, one page with every figure in it.
    page = tmp_path / "fieldphot.html"
    argv = ["report", str(night.config), "--workdir", str(work), "--out", str(page)]
    assert fieldphot_main(argv) == 0
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 5 and "<td>broken</td><td>bad</td>" in text


def test_a_relative_snakefile_path_is_the_same_code(run):
    """Issue 26: the README's plain snakemake command with a relative `-s ../Snakefile`
    reran every job ("code has changed"): the steps' commands name the resolved scripts
    folder, so the same night is the same code however it is invoked."""
    night, work, _, _ = run
    cmd = snakemake_command(night.config, work, 2, "--dry-run")
    cmd[cmd.index("-s") + 1] = os.path.relpath(workflow_files.SNAKEFILE, work)
    cmd[cmd.index("--directory") + 1] = "."
    dry = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-2000:]


def test_a_raw_file_rewritten_with_its_old_time_is_measured_again(run):
    """A frame replaced by other bytes that keep the old modification time (``cp -p``,
    a restored backup) is found by its content digest: that frame is calibrated again,
    and no other."""
    night, work, _, _ = run
    frame = night.frames["frame"].iloc[3]
    raw = night.raw_dir / f"{frame}.fits"
    calibrated = {p: p.stat().st_mtime_ns for p in (work / "results").glob("calibrated/*/*")}
    before = raw.stat()
    fits.setval(raw, "OBSERVER", value="someone else")  # other bytes...
    os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...the old time
    proc = snakemake(work, night.config)
    assert proc.returncode == 0, proc.stderr[-2000:]
    changed = [p.stem for p, t in calibrated.items() if p.stat().st_mtime_ns != t]
    assert changed == [frame]
    again = snakemake(work, night.config, "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr
