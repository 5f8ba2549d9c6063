# Softmax dumps of every evaluated model variant on every evaluation dataset (GPU; shardable by image range).


if DUMP_SHARDS == 1:

    rule dump_softmax:
        input:
            unpack(demo_inputs),
            checkpoint=variant_checkpoint,
        output:
            index=f"{RESULTS}/softmax/{{model}}/{{variant}}/{{dataset}}/index.json",
        params:
            arch=model_arch,
            num_classes=model_classes,
            dataset=dataset_spec,
            options=config["inference"],
            shard=[0, 1],
        log:
            f"{LOGS}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.log",
        benchmark:
            f"{BENCH}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.tsv"
        threads: 4
        resources:
            gpu=1,
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/dump_softmax.py"

else:

    rule dump_softmax:
        input:
            unpack(demo_inputs),
            checkpoint=variant_checkpoint,
        output:
            index=f"{RESULTS}/softmax/{{model}}/{{variant}}/{{dataset}}/index.shard-{{shard}}-of-{DUMP_SHARDS}.json",
        params:
            arch=model_arch,
            num_classes=model_classes,
            dataset=dataset_spec,
            options=config["inference"],
            shard=dump_shard,
        log:
            f"{LOGS}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.shard{{shard}}.log",
        benchmark:
            f"{BENCH}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.shard{{shard}}.tsv"
        threads: 4
        resources:
            gpu=1,
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/dump_softmax.py"

    rule merge_softmax_shards:
        input:
            shards=expand(
                f"{RESULTS}/softmax/{{{{model}}}}/{{{{variant}}}}/{{{{dataset}}}}/index.shard-{{shard}}-of-{DUMP_SHARDS}.json",
                shard=range(DUMP_SHARDS),
            ),
        output:
            index=f"{RESULTS}/softmax/{{model}}/{{variant}}/{{dataset}}/index.json",
        log:
            f"{LOGS}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.merge.log",
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/merge_softmax_shards.py"
