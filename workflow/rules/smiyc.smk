# SegmentMeIfYouCan: score files and label masks of every model variant in the benchmark's format and folder
# names, the submission zip, both protocols per method x dataset (third-party score maps too) and the report.
import re


SMIYC_ENTRIES = smiyc_entries()
SMIYC_SCENE_ENTRIES = smiyc_entries(["smiyc_obstacle"]) if "smiyc_obstacle" in SMIYC_EVALUATED else []
SMIYC_OWN_SCORES = [smiyc_scores_dir(m, ds) for ds in SMIYC_DATASETS for m in smiyc_own_methods(ds)]
# what a participant submits: the own methods' folders of the benchmark's inference splits (not Road Anomaly), of
# datasets holding the test frames (a track's split all or test: its validation split alone is no submission)
SMIYC_SUBMITTED = [smiyc_scores_dir(m, ds) for ds in SMIYC_DATASETS for m in smiyc_own_methods(ds)
                   if SMIYC_FOLDER[ds] in SUBMISSION_FOLDERS and DATASETS[ds]["split"] != "validation"]


wildcard_constraints:
    method=r"[^/]+",
    folder="|".join(map(re.escape, SMIYC_FOLDER_DATASET)) or "NONE",


rule smiyc_scores:
    input:
        unpack(smiyc_scores_inputs),
    output:
        folder=directory(f"{SMIYC}/anomaly_p/{{method}}/{{folder}}"),
    params:
        options=smiyc_scores_options,
    log:
        f"{LOGS}/smiyc_scores/{{method}}/{{folder}}.log",
    benchmark:
        f"{BENCH}/smiyc_scores/{{method}}/{{folder}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/smiyc_scores.py"


rule smiyc_labels:
    input:
        store=smiyc_label_store,
    output:
        folder=directory(f"{SMIYC}/labels/{{dataset}}"),
    log:
        f"{LOGS}/smiyc_labels/{{dataset}}.log",
    benchmark:
        f"{BENCH}/smiyc_labels/{{dataset}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/smiyc_labels.py"


rule smiyc_zip:
    input:
        folders=SMIYC_SUBMITTED,
    output:
        zip=f"{SMIYC}/submission.zip",
    log:
        f"{LOGS}/smiyc_zip.log",
    benchmark:
        f"{BENCH}/smiyc_zip.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/smiyc_zip.py"


rule smiyc_eval:
    input:
        scores=smiyc_method_scores,
        labels=f"{SMIYC}/labels/{{dataset}}",
    output:
        json=f"{SMIYC}/eval/{{method}}/{{dataset}}.json",
        npz=f"{SMIYC}/eval/{{method}}/{{dataset}}.npz",
        components=f"{SMIYC}/eval/{{method}}/{{dataset}}.components.npz",
    params:
        options=smiyc_eval_options,
    log:
        f"{LOGS}/smiyc_eval/{{method}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/smiyc_eval/{{method}}/{{dataset}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/smiyc_eval.py"


# The SMIYC tables and figure: rendered by the report rules of report.smk (included after this file).
SMIYC_REPORT_TARGETS = [
    (
        "table_smiyc",
        "table",
        entry_paths(SMIYC_ENTRIES)
        + [p[: -len(".json")] + ext for p in entry_paths(SMIYC_ENTRIES) for ext in (".npz", ".components.npz")],
        {},
        {"entries": SMIYC_ENTRIES, "n_boot": EVAL["n_boot"], "seed": config["seed"]},
    ),
    ("table_smiyc_scenes", "table", entry_paths(SMIYC_SCENE_ENTRIES), {}, {"entries": SMIYC_SCENE_ENTRIES}),
    ("figure_smiyc_curves", "figure", entry_paths(SMIYC_ENTRIES), {}, {"entries": SMIYC_ENTRIES}),
]
