# Networks: the demo's from-scratch baseline and OoD fine-tuning with entropy maximization (one job per epoch).
#
# The params of these rules hold only the options that determine the weights, so Snakemake reruns a
# training job only when its checkpoint would change. The runtime-only options (epochs, workers and
# device; meta_ood.options.TRAIN_RUNTIME_OPTIONS) are read by the scripts from snakemake.config: changing
# them reruns nothing, and a run with more epochs continues from the last checkpoint. Fine-tuning epoch
# N does not depend on how many epochs follow, so `epochs` is no param of ood_finetune; it is one of
# train_baseline, whose output is the last epoch. A changed weight option while checkpoints of the old
# one exist stops the workflow here, at start-up (_startup_checks in common.smk), before Snakemake would delete
# and retrain them: delete the model's folder or choose a new `run:` name to train anew.


rule train_baseline:
    input:
        unpack(demo_inputs),
    output:
        checkpoint=f"{RESULTS}/models/{{model}}/baseline.pt",
    params:
        cityscapes=DATASETS["cityscapes"]["root"],
        split=DATASETS["cityscapes"]["train_split"],
        options=baseline_params,
    log:
        f"{LOGS}/train_baseline/{{model}}.log",
    benchmark:
        f"{BENCH}/train_baseline/{{model}}.tsv"
    resources:
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_baseline.py"


rule ood_finetune:
    input:
        unpack(demo_inputs),
        init=previous_checkpoint,
        coco=coco_selection,
    output:
        checkpoint=f"{RESULTS}/models/{{model}}/ood/epoch{{epoch}}.pt",
    params:
        cityscapes=DATASETS["cityscapes"]["root"],
        split=DATASETS["cityscapes"]["train_split"],
        coco_root=COCO["root"],
        coco_split=COCO["split"],
        coco_masks=COCO_MASKS,
        baseline=baseline_of,
        options=finetune_params,
        ood_id=config["coco_filter"]["ood_id"],
    log:
        f"{LOGS}/ood_finetune/{{model}}/epoch{{epoch}}.log",
    benchmark:
        f"{BENCH}/ood_finetune/{{model}}/epoch{{epoch}}.tsv"
    resources:
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/ood_finetune.py"
