"""Snakemake adapter: light curves from every per-frame catalog."""

from pathlib import Path

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.light_curves(list(sm.input), Path(sm.output.lightcurves).parent, sm.params.cfg)
