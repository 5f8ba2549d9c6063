# meta-ood: entropy maximization and meta classification for OoD detection in semantic segmentation.
# Thin entry point: the stages live in workflow/rules/*.smk, helpers in common.smk.
from snakemake.utils import min_version

min_version("9.0")


# No --configfile: the embedded demo (config.yaml). With --configfile: exactly the user's files on top
# of the schema's defaults; nothing of the demo leaks in. common.smk reads the files itself, strictly
# (duplicated keys and syntax errors name file and line, 1e-3 is a number), puts --config on top and
# validates, before any rule is defined: no `configfile:` directive, whose reading is lax.

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


onsuccess:
    print(finished_message(workflow.overwrite_configfiles))
