"""Snakemake adapter: astrometric solution of one frame."""

from fieldphot import stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.solve(
        sm.input.calibrated,
        sm.input.sources,
        sm.input.refcat,
        sm.output[0],
        sm.params.cfg,
        getattr(sm.input, "neighbour", None),
    )
