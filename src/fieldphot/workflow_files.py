"""Where the workflow's own files are: the Snakefile, its rules, schemas and report
captions, the default config and instrument profiles, the Snakemake profiles and the
conda environment.

From a checkout (or an editable install) they are the repository's top-level folders
(DESIGN.md, "Layout"); a wheel ships a copy of them inside the package, in
``fieldphot/pipeline/`` (``pyproject.toml``), so that an installed fieldphot runs from any
folder.

Examples
--------
>>> (ROOT / "Snakefile").exists() and (SCHEMAS / "config.schema.yaml").exists()
True
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_SHIPPED = _PACKAGE / "pipeline"

#: The folder holding ``Snakefile``, ``workflow/``, ``config/``, ``scripts/``, ``envs/`` and
#: ``profiles/``: the wheel's copy when there is one, else the checkout.
ROOT = _SHIPPED if (_SHIPPED / "Snakefile").exists() else _PACKAGE.parents[1]
SNAKEFILE = ROOT / "Snakefile"
SCHEMAS = ROOT / "workflow" / "schemas"
INSTRUMENTS = ROOT / "config" / "instruments"
PROFILES = ROOT / "profiles"
