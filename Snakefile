# fieldphot: raw CCD/CMOS frames -> calibrated frames, catalogs and light curves.
# Thin entry point; the rules live in workflow/rules/, the science in src/fieldphot/.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from fieldphot import config as fieldphot_config

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))


try:
    fieldphot_config.check(config)
except ValueError as exc:
    raise WorkflowError(str(exc)) from None


include: "workflow/rules/common.smk"


# snakemake --report opens on the night's summary once the report pages are written.
report: landing_page()


rule all:
    input:
        all_products,
        all_nights,
        season_products,
        frame_images,
    default_target: True


include: "workflow/rules/frames.smk"
include: "workflow/rules/lightcurves.smk"


# What crosses nights; a night's run (NIGHT) finds it made by the season run.
if not NIGHT:

    include: "workflow/rules/manifest.smk"
    include: "workflow/rules/masters.smk"
    include: "workflow/rules/season.smk"
