"""Snakemake adapter: summary, frames table, plots and target files across nights."""

from pathlib import Path

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.light_curves(
        stages.night_products(sm.input, "night_lightcurves"),
        Path(sm.output.summary).parent,
        sm.params.cfg,
        sm.params.names,
        sm.params.moving,
    )
