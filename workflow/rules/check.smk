# Opt-in whole-dataset check (not part of `rule all`): read every image and label file of the datasets
# this run uses once and list every problem in results/<run>/check_data.md. The job fails when it finds
# problems; Snakemake then removes the report, but the same report is in logs/<run>/check_data.log.
#   snakemake --cores 1 check_data
# COCO is checked as the selection the fine-tuning reads (coco_filter's masks), when a model uses COCO proxies.

CHECK_COCO = any(uses_coco(m) for m in MODELS)


rule check_data:
    input:
        unpack(demo_inputs),
        coco=[COCO_SELECTED] if CHECK_COCO else [],
    output:
        md=f"{RESULTS}/check_data.md",
    params:
        datasets={name: spec for name, spec in check_data_specs().items() if name != "coco" or CHECK_COCO},
    log:
        f"{LOGS}/check_data.log",
    benchmark:
        f"{BENCH}/check_data.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/check_data.py"
