# Data stages: the embedded demo datasets and the COCO OoD-proxy selection.


# The demo writes only below demo.root, a folder it creates and marks itself (start-up checks that every
# dataset root of a demo run lies inside it); its only declared output is the marker.
if DEMO["enabled"]:

    rule demo_data:
        output:
            marker=DEMO_MARKER,
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
        unpack(coco_inputs),
    output:
        csv=f"{RESULTS}/coco/selected.csv",
        masks=directory(f"{RESULTS}/coco/masks"),
    params:
        annotations=COCO_ANNOTATIONS,
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


rule run_config:
    output:
        config=f"{RESULTS}/config.yaml",
    params:
        config=config,
    log:
        f"{LOGS}/run_config.log",
    benchmark:
        f"{BENCH}/run_config.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/run_config.py"
