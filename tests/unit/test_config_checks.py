"""Config mistakes are refused with one line naming the key, before anything runs."""

import subprocess

import pytest

from fieldphot import config, runner
from fieldphot.cli import snakemake_command


@pytest.mark.parametrize(
    "cfg, text",
    [
        ({"exclude_frame": ["a"]}, "unknown key exclude_frame (did you mean 'exclude_frames'?)"),
        (
            {"photometry": {"aperture_fwhn": 2.0}},
            "unknown key photometry.aperture_fwhn (did you mean 'aperture_fwhm'?)",
        ),
        ({"raw_dir": "/no/such/folder"}, "raw_dir '/no/such/folder' is not a folder"),
        (
            {"targets": [{"name": "rock", "ephemeris": "/no/such/eph.txt"}]},
            "targets 'rock' ephemeris: /no/such/eph.txt: ephemeris file cannot be read "
            "(No such file or directory)",
        ),
    ],
)
def test_config_mistakes_are_named(tmp_path, cfg, text):
    (tmp_path / "raw").mkdir()
    with pytest.raises(ValueError, match="^config: ") as exc:
        runner.run_night({"raw_dir": str(tmp_path / "raw"), **cfg}, tmp_path / "results")
    assert text in str(exc.value) and "\n" not in str(exc.value)


def test_a_working_folder_inside_the_raw_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="inside raw_dir"):
        config.check({"raw_dir": str(tmp_path)}, tmp_path / "work")


def test_the_workflow_refuses_a_typo_before_planning(tmp_path):
    (tmp_path / "raw").mkdir()
    cfg = tmp_path / "night.yaml"
    cfg.write_text(f"raw_dir: {tmp_path / 'raw'}\nexclude_frame: [a]\n")
    proc = subprocess.run(
        snakemake_command(cfg, tmp_path / "work", 1, "--dry-run"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "unknown key exclude_frame (did you mean 'exclude_frames'?)" in proc.stdout + proc.stderr
