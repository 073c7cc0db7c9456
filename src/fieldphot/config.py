"""The workflow's config schema, read once: defaults for every key.

The same schema validates the config inside Snakemake (``snakemake.utils.validate``);
:func:`with_defaults` gives the plain-loop runner and the tests the identical defaults.

Examples
--------
>>> cfg = with_defaults({"raw_dir": "raw", "reference_catalog": {"path": "cat.parquet"}})
>>> cfg["photometry"]["aperture_fwhm"], cfg["reference_catalog"]["columns"]["ra"]
(2.0, 'ra')
"""

import copy
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _fill(schema: dict, value):
    if schema.get("type") != "object":
        return value
    value = {} if value is None else value
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            value[key] = _fill(sub, value[key])
    return value


def with_defaults(config: dict) -> dict:
    """A deep copy of ``config`` with every schema default filled in."""
    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    return _fill(schema, copy.deepcopy(config))


def _rows(schema: dict, prefix: str = ""):
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            yield name, "", sub.get("description", "")
            yield from _rows(sub, name + ".")
        else:
            default = sub.get("default", "(required)" if key in schema.get("required", []) else "")
            yield name, default, sub.get("description", "")


def markdown() -> str:
    """``config/README.md``: every key of the schema with its default and description."""
    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    lines = [
        "# fieldphot configuration",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` by `fieldphot config-doc`;"
        " a test keeps it in step.",
        "`config/config.yaml` holds the science parameters; your own night's settings"
        " (`raw_dir`, `reference_catalog`) go in a file passed with `--configfile`.",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    for name, default, desc in _rows(schema):
        shown = f"`{default}`" if default not in ("", "(required)") else default
        lines.append(f"| `{name}` | {shown} | {desc} |")
    return "\n".join(lines) + "\n"
