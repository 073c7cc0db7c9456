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
