"""Snakemake adapter: aperture photometry of one frame."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.photometer(
        sm.input.calibrated,
        sm.input.astrometry,
        sm.input.refcat,
        sm.output[0],
        sm.params.cfg,
        sm.params.targets,
        sm.input.sources,
    )
