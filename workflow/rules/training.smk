# Networks: the demo's from-scratch baseline and OoD fine-tuning with entropy maximization (one job per epoch).


rule train_baseline:
    input:
        unpack(demo_inputs),
    output:
        checkpoint=f"{RESULTS}/models/{{model}}/baseline.pt",
    params:
        cityscapes=DATASETS["cityscapes"]["root"],
        split=DATASETS["cityscapes"]["train_split"],
        options=baseline_options,
    log:
        f"{LOGS}/train_baseline/{{model}}.log",
    benchmark:
        f"{BENCH}/train_baseline/{{model}}.tsv"
    threads: 4
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
        coco=COCO_SELECTED,
    output:
        checkpoint=f"{RESULTS}/models/{{model}}/ood/epoch{{epoch}}.pt",
    params:
        cityscapes=DATASETS["cityscapes"]["root"],
        split=DATASETS["cityscapes"]["train_split"],
        coco_root=COCO["root"],
        coco_split=COCO["split"],
        coco_masks=COCO_MASKS,
        baseline=baseline_of,
        options=finetune_options,
    log:
        f"{LOGS}/ood_finetune/{{model}}/epoch{{epoch}}.log",
    benchmark:
        f"{BENCH}/ood_finetune/{{model}}/epoch{{epoch}}.tsv"
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/ood_finetune.py"
