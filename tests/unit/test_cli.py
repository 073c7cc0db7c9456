"""The command line as a new user meets it (issue 26): a mistyped option, a broken config
file or a wrong folder is one line naming what to fix, never a traceback or silence."""

import os

import pytest

from fieldphot import cli


@pytest.fixture(autouse=True)
def _path_restored(monkeypatch):
    """`fieldphot run` puts a local-run `scontrol` on its PATH: undone after each test."""
    monkeypatch.setenv("PATH", os.environ["PATH"])


@pytest.mark.parametrize(
    "argv, said",
    [
        (["init", "raw", "--catlog", "c.csv"], "unknown option --catlog (did you mean --catalog?)"),
        (["status", "n.yaml", "--workdirr", "w"], "unknown option --workdirr (did you mean"),
        (["run", "n.yaml", "--dry-runn"], "unknown option --dry-runn (did you mean --dry-run?)"),
        (["simulate", "out", "extra"], "unexpected argument 'extra'"),
    ],
)
def test_unknown_options_are_errors_with_the_nearest_name(argv, said, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["run", "status"])
def test_a_broken_config_names_its_file_and_line(command, tmp_path, capsys):
    config = tmp_path / "night.yaml"
    config.write_text(f"raw_dir: {tmp_path}\nphotometry:\n  mode: [optimal\n  radius_px: 3\n")
    assert cli.main([command, str(config), "--workdir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fieldphot {command}: {config}:4:") and "not valid YAML" in err
    assert len(err.splitlines()) == 1


def test_status_in_the_wrong_folder_is_one_line(tmp_path, capsys):
    config = tmp_path / "night.yaml"
    config.write_text(f"raw_dir: {tmp_path}\n")
    assert cli.main(["status", str(config), "--workdir", str(tmp_path / "elsewhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no results of a run in" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert cli.main(["status", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml: cannot be read" in capsys.readouterr().err


def test_a_local_run_asks_slurm_nothing(tmp_path, monkeypatch):
    """Issue 26: with SLURM installed but stopped, every Snakemake start waited 8-10 s
    (the executor plugin runs `scontrol show config` when imported). A local run gets an
    `scontrol` that answers at once; a run on SLURM (its profile or --executor) does not."""
    import shutil
    import subprocess

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert not cli.ask_slurm_nothing(["--profile", "slurm"], tmp_path)  # fieldphot's own
    assert not cli.ask_slurm_nothing(["--executor=slurm"], tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "config.yaml").write_text("executor: slurm\n")
    assert not cli.ask_slurm_nothing(["--workflow-profile", str(tmp_path / "p")], tmp_path)
    assert os.environ["PATH"] == "/usr/bin:/bin"
    assert cli.ask_slurm_nothing(["--dry-run"], tmp_path)
    shim = os.environ["PATH"].split(":")[0]
    assert subprocess.run([f"{shim}/scontrol", "show", "config"]).returncode == 1
