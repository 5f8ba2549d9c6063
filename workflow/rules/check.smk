# Opt-in whole-dataset check (not part of `rule all`): read every image and label file of the datasets
# this run uses once and list every problem in results/<run>/check_data.md. The job fails when it finds
# problems; Snakemake then removes the report, but the same report is in logs/<run>/check_data.log.
#   snakemake --cores 1 check_data


rule check_data:
    input:
        unpack(demo_inputs),
        coco=COCO_SELECTED,
    output:
        md=f"{RESULTS}/check_data.md",
    params:
        datasets=check_data_specs(),
    log:
        f"{LOGS}/check_data.log",
    benchmark:
        f"{BENCH}/check_data.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/check_data.py"
