# Data stages: the embedded demo datasets and the COCO OoD-proxy selection.


if DEMO["enabled"]:

    rule demo_data:
        output:
            marker=DEMO_MARKER,
            coco_annotations=COCO_ANNOTATIONS,
        params:
            generator=demo_params(),
        log:
            f"{LOGS}/demo_data.log",
        benchmark:
            f"{BENCH}/demo_data.tsv"
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/demo_data.py"


rule coco_filter:
    input:
        unpack(demo_inputs),
        annotations=COCO_ANNOTATIONS,
    output:
        csv=f"{RESULTS}/coco/selected.csv",
        masks=directory(f"{RESULTS}/coco/masks"),
    params:
        images=f"{COCO['root']}/{COCO['split']}",
        min_size=config["coco_filter"]["min_size"],
        exclude=config["coco_filter"]["exclude"],
        ood_id=config["coco_filter"]["ood_id"],
    log:
        f"{LOGS}/coco_filter.log",
    benchmark:
        f"{BENCH}/coco_filter.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/coco_filter.py"
