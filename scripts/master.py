"""Snakemake adapter: combine raw calibration frames into a master.

Its memory budget (calibration.combine_memory_mb) is read from the config, not the rule's
params: it changes how the master is combined, not what it holds (fieldphot.steps.READS).
"""

from fieldphot import stages, steps

sm = snakemake  # noqa: F821
with stages.logged(sm.log[0]):
    stages.master(
        sm.wildcards.kind,
        sm.params.rows,
        sm.output[0],
        cfg=sm.params.cfg,
        memory_mb=steps.master_params(sm.config)["memory_mb"],
        **{k: sm.input.get(k, "") for k in ("bias", "dark", "flat")},
    )
