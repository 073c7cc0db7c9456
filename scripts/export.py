"""Snakemake adapter: the night's calibrated catalogs in the configured export formats."""

from pathlib import Path

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.export(
        stages.night_products(sm.input, "catalogs"),
        Path(sm.output[0]).parent,
        sm.params.cfg,
        sm.params.targets,
    )
