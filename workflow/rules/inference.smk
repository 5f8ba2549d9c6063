# Softmax dumps of every evaluated model variant on every evaluation dataset (GPU; shardable by image range).
#
# The params hold only the inference options that change the stored values (dump_options: batch_size,
# dtype, store_logits, amp, sliding_window, codec, and per dataset whether the probabilities are kept
# and which score planes are stored). device and workers (meta_ood.options.INFERENCE_RUNTIME_OPTIONS)
# are read by the script from snakemake.config, so changing them reruns no dump; shards only splits
# the work (it names the shard outputs).


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
            options=dump_options,
            shard=[0, 1],
        log:
            f"{LOGS}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.log",
        benchmark:
            f"{BENCH}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.tsv"
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
            options=dump_options,
            shard=dump_shard,
        log:
            f"{LOGS}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.shard{{shard}}.log",
        benchmark:
            f"{BENCH}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.shard{{shard}}.tsv"
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
        benchmark:
            f"{BENCH}/dump_softmax/{{model}}/{{variant}}/{{dataset}}.merge.tsv"
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/merge_softmax_shards.py"
