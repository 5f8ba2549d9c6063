# meta-ood: entropy maximization and meta classification for OoD detection in semantic segmentation.
# Thin entry point: the stages live in workflow/rules/*.smk, helpers in common.smk.
from snakemake.utils import min_version

min_version("9.0")


# No --configfile: the embedded demo (config.yaml). With --configfile: exactly the user's files on top
# of the schema's defaults; nothing of the demo leaks in.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/smiyc.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/check.smk"


rule all:
    input:
        all_targets(),
    default_target: True
