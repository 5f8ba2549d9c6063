# Evaluation: pixel-level metrics, per-segment metrics, meta classification and segment-level errors.
from meta_ood.stages.layout import SEGMENT_COMPONENTS, segment_tables


rule pixel_eval:
    input:
        store=f"{RESULTS}/softmax/{{model}}/{{variant}}/{{dataset}}/index.json",
    output:
        json=f"{RESULTS}/pixel/{{model}}/{{variant}}/{{dataset}}.json",
        npz=f"{RESULTS}/pixel/{{model}}/{{variant}}/{{dataset}}.npz",
    params:
        options=pixel_eval_options,
    log:
        f"{LOGS}/pixel_eval/{{model}}/{{variant}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/pixel_eval/{{model}}/{{variant}}/{{dataset}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/pixel_eval.py"


SEGMENT_FILES = segment_tables(THRESHOLDS) + [SEGMENT_COMPONENTS]


if SEGMENT_SHARDS == 1:

    rule segment_features:
        input:
            store=f"{RESULTS}/softmax/{{model}}/{{variant}}/{{dataset}}/index.json",
        output:
            expand(f"{RESULTS}/segments/{{{{model}}}}/{{{{variant}}}}/{{{{dataset}}}}/{{name}}", name=SEGMENT_FILES),
        params:
            thresholds=THRESHOLDS,
            shard=None,
        log:
            f"{LOGS}/segment_features/{{model}}/{{variant}}/{{dataset}}.log",
        benchmark:
            f"{BENCH}/segment_features/{{model}}/{{variant}}/{{dataset}}.tsv"
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/segment_features.py"

else:

    rule segment_features:
        input:
            store=f"{RESULTS}/softmax/{{model}}/{{variant}}/{{dataset}}/index.json",
        output:
            expand(
                f"{RESULTS}/segments/{{{{model}}}}/{{{{variant}}}}/{{{{dataset}}}}/shard-{{{{shard}}}}-of-{SEGMENT_SHARDS}/{{name}}",
                name=SEGMENT_FILES,
            ),
        params:
            thresholds=THRESHOLDS,
            shard=segment_shard,
        log:
            f"{LOGS}/segment_features/{{model}}/{{variant}}/{{dataset}}.shard{{shard}}.log",
        benchmark:
            f"{BENCH}/segment_features/{{model}}/{{variant}}/{{dataset}}.shard{{shard}}.tsv"
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/segment_features.py"

    rule merge_segment_shards:
        input:
            expand(
                f"{RESULTS}/segments/{{{{model}}}}/{{{{variant}}}}/{{{{dataset}}}}/shard-{{shard}}-of-{SEGMENT_SHARDS}/{{name}}",
                shard=range(SEGMENT_SHARDS),
                name=SEGMENT_FILES,
            ),
        output:
            expand(f"{RESULTS}/segments/{{{{model}}}}/{{{{variant}}}}/{{{{dataset}}}}/{{name}}", name=SEGMENT_FILES),
        params:
            thresholds=THRESHOLDS,
            n_shards=SEGMENT_SHARDS,
        log:
            f"{LOGS}/segment_features/{{model}}/{{variant}}/{{dataset}}.merge.log",
        benchmark:
            f"{BENCH}/segment_features/{{model}}/{{variant}}/{{dataset}}.merge.tsv"
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/merge_segment_shards.py"


rule meta_classify:
    input:
        segments=f"{RESULTS}/segments/{{model}}/{{variant}}/{{dataset}}/{{tag}}.parquet",
    output:
        table=f"{RESULTS}/meta/{{model}}/{{variant}}/{{dataset}}/{{tag}}.parquet",
        json=f"{RESULTS}/meta/{{model}}/{{variant}}/{{dataset}}/{{tag}}.json",
    params:
        options=config["meta"],
    log:
        f"{LOGS}/meta_classify/{{model}}/{{variant}}/{{dataset}}/{{tag}}.log",
    benchmark:
        f"{BENCH}/meta_classify/{{model}}/{{variant}}/{{dataset}}/{{tag}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/meta_classify.py"


rule segment_eval:
    input:
        segments=expand(f"{RESULTS}/segments/{{{{model}}}}/{{{{variant}}}}/{{{{dataset}}}}/{{name}}", name=SEGMENT_FILES),
        meta=expand(f"{RESULTS}/meta/{{{{model}}}}/{{{{variant}}}}/{{{{dataset}}}}/{{tag}}.parquet", tag=TAGS),
    output:
        json=f"{RESULTS}/segment_eval/{{model}}/{{variant}}/{{dataset}}.json",
    params:
        thresholds=THRESHOLDS,
        meta_threshold=config["meta"]["threshold"],
        reference_fp_after=config["meta"]["reference_fp_after"],
    log:
        f"{LOGS}/segment_eval/{{model}}/{{variant}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/segment_eval/{{model}}/{{variant}}/{{dataset}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/segment_eval.py"
