"""Snakemake adapter: classify raw frames into the manifest."""

from fieldphot import runner, stages

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.manifest(
        runner.raw_files(sm.input.raw),
        sm.output[0],
        sm.input.profile,
        sm.params.observatory or None,
        sm.params.sky_dark_min_frames,
        sm.input.raw,
        sm.params.raw_state,
        sm.params.pointing,
    )
