# Report: the paper's tables and figures, rendered from result files only, and a summary of the run.

PIXEL_ENTRIES, MIOU_ENTRIES = table1_entries()  # per model (figures 8, 9, 11, 12 and the summary compare within a model)
TABLE1_PIXEL, TABLE1_MIOU = one_per_baseline(PIXEL_ENTRIES), one_per_baseline(MIOU_ENTRIES)
TABLE2_ENTRIES = table2_entries()
PAIRED_ENTRIES = paired_entries()
PAIRED_ERROR_ENTRIES = paired_error_entries()
TABLE3_ENTRIES = table3_entries()
FIG14_ENTRIES = figure14_entries()
EXAMPLE_VARIANTS = [v for _, v in reported_variants(MAIN_MODEL)]
FIG3_ENTRIES = pixel_entries_of(PIXEL_ENTRIES, [MAIN_MODEL], PAPER_OOD_DATASETS)
# the void-trained models' OoD training is named as what it is (appendix C)
VOID_PIXEL_ENTRIES = [{**e, "label": "void OoD training"} if e["label"] == "OoD training" else e
                      for e in pixel_entries_of(PIXEL_ENTRIES, VOID_MODELS, ["cityscapes_void", "lostandfound"])]
FIG8_ENTRIES = pixel_entries_of(VOID_PIXEL_ENTRIES, VOID_MODELS, ["cityscapes_void"])
FIG9_ENTRIES = pixel_entries_of(VOID_PIXEL_ENTRIES, VOID_MODELS, ["lostandfound"])
FIG11_ENTRIES = pixel_entries_of(PIXEL_ENTRIES, [SECOND_MODEL], PAPER_OOD_DATASETS)

# One rule per table / figure: (name of the rule and its outputs, "table" or "figure", input files, named
# input files, keyword arguments of the function[, the meta_ood.report function when not the name]).
REPORT_TARGETS = [
    (
        "table1",
        "table",
        entry_paths(TABLE1_PIXEL + TABLE1_MIOU),
        {},
        {"pixel_entries": TABLE1_PIXEL, "miou_entries": TABLE1_MIOU, "n_boot": EVAL["n_boot"], "seed": config["seed"]},
    ),
    (
        "table_paired",
        "table",
        entry_paths(PAIRED_ENTRIES + PAIRED_ERROR_ENTRIES, keys=("a", "b")),
        {},
        {"entries": PAIRED_ENTRIES, "error_entries": PAIRED_ERROR_ENTRIES, "n_boot": EVAL["n_boot"],
         "seed": config["seed"]},
    ),
    (
        "table_definitions",
        "table",
        entry_paths(TABLE1_PIXEL) + [p[: -len(".json")] + ".npz" for p in entry_paths(TABLE1_PIXEL)],
        {},
        {"entries": TABLE1_PIXEL, "definitions": EVAL["definitions"]},
    ),
    (
        "table2",
        "table",
        entry_paths(TABLE2_ENTRIES),
        {},
        {"entries": TABLE2_ENTRIES, "n_boot": EVAL["n_boot"], "seed": config["seed"]},
    ),
    (
        "table3",
        "table",
        entry_paths(TABLE3_ENTRIES) + [p[: -len(".json")] + ".parquet" for p in entry_paths(TABLE3_ENTRIES)],
        {},
        {"entries": TABLE3_ENTRIES, "n_boot": EVAL["n_boot"], "seed": config["seed"]},
    ),
    ("table_components", "table", entry_paths(TABLE2_ENTRIES), {}, {"entries": TABLE2_ENTRIES}),
    ("figure3", "figure", entry_paths(FIG3_ENTRIES), {}, {"entries": FIG3_ENTRIES}),
    ("figure4", "figure", entry_paths(FIG3_ENTRIES), {}, {"entries": FIG3_ENTRIES}),
    ("figure8", "figure", entry_paths(FIG8_ENTRIES), {}, {"entries": FIG8_ENTRIES}, "figure3"),
    ("figure9", "figure", entry_paths(FIG9_ENTRIES), {}, {"entries": FIG9_ENTRIES}, "figure3"),
    ("figure11", "figure", entry_paths(FIG11_ENTRIES), {}, {"entries": FIG11_ENTRIES}, "figure3"),
    ("figure12", "figure", entry_paths(FIG11_ENTRIES), {}, {"entries": FIG11_ENTRIES}, "figure4"),
    ("figure5", "figure", entry_paths(TABLE1_MIOU), {}, {"miou_entries": TABLE1_MIOU}),
    ("figure7", "figure", entry_paths(TABLE2_ENTRIES), {}, {"entries": TABLE2_ENTRIES}),
    (
        "figure14",
        "figure",
        entry_paths(FIG14_ENTRIES, keys=("miou_path", "pixel_path")),
        {},
        {"entries": FIG14_ENTRIES, "reported_epoch": ood_epoch(MAIN_MODEL)},
    ),
    (
        "examples",
        "figure",
        [],
        {
            "stores": [store_index(MAIN_MODEL, v, "lostandfound") for v in EXAMPLE_VARIANTS],
            "meta": [meta_file(MAIN_MODEL, v, "lostandfound", EXAMPLE_TAG, "parquet") for v in EXAMPLE_VARIANTS],
        },
        # segments with P(FP) > meta.threshold are drawn as removed, as table 2 counts them
        {**example_args(), "meta_threshold": config["meta"]["threshold"]},
    ),
] + [(name, "figure", [], files, args) for name, (files, args) in SCENE_FIGURES.items()]


for name, kind, files, named_files, args, *function in REPORT_TARGETS + SMIYC_REPORT_TARGETS:

    rule:
        name:
            f"{name}"
        input:
            *files,
            **named_files,
        output:
            **report_outputs(name, kind),
        params:
            function=function[0] if function else name,
            args=args,
        log:
            f"{LOGS}/report/{name}.log",
        benchmark:
            f"{BENCH}/report/{name}.tsv"
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/report.py"


# the detection errors of every segment dataset, one section each (the paper's claim is checked on LostAndFound)
rule summary:
    input:
        pixel=entry_paths(PIXEL_ENTRIES + MIOU_ENTRIES),
        errors=entry_paths(TABLE2_ENTRIES),
    output:
        md=f"{RESULTS}/summary.md",
    params:
        pixel_entries=PIXEL_ENTRIES,
        miou_entries=MIOU_ENTRIES,
        error_entries=TABLE2_ENTRIES,
        run=RUN,
        void_models=VOID_MODELS,
        n_boot=EVAL["n_boot"],
        seed=config["seed"],
    log:
        f"{LOGS}/report/summary.log",
    benchmark:
        f"{BENCH}/report/summary.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/summary.py"
