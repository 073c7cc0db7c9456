"""The project's own standards, checked on every CI run: ruff and snakemake --lint."""

import subprocess
import sys
from pathlib import Path

from fieldphot.cli import snakemake_command

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(REPO)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_snakemake_lint_clean(tmp_path):
    config = tmp_path / "config.yaml"
    (tmp_path / "raw").mkdir()
    config.write_text(f"raw_dir: {tmp_path}/raw\nreference_catalog: {{path: {tmp_path}/cat.csv}}\n")
    (tmp_path / "cat.csv").write_text("ra,dec,mag\n")
    cmd = snakemake_command(config, tmp_path, 1, "--lint")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in text, text[-3000:]


def test_config_readme_is_current():
    from fieldphot import config

    assert (REPO / "config" / "README.md").read_text() == config.markdown(), (
        "config/README.md is stale: run `fieldphot config-doc > config/README.md`"
    )


def test_every_schema_description_is_whole():
    """An unquoted description in a YAML flow mapping ends at its first comma (two were
    cut so in config/README.md): every description ends as a sentence does."""
    import yaml

    from fieldphot.workflow_files import SCHEMAS

    cut = []

    def walk(node, path):
        if isinstance(node, dict):
            text = node.get("description")
            if isinstance(text, str) and not text.rstrip().endswith((".", ")", "?")):
                cut.append(f"{path}: {text}")
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for value in node:
                walk(value, path)

    for schema in sorted(SCHEMAS.glob("*.yaml")):
        walk(yaml.safe_load(schema.read_text()), schema.name)
    assert not cut, cut
