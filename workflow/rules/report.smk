# Report: the paper's tables and figures, rendered from result files only, and a summary of the run.

PIXEL_ENTRIES, MIOU_ENTRIES = table1_entries()
TABLE2_ENTRIES = table2_entries()
TABLE3_ENTRIES = table3_entries()
FIG14_ENTRIES = figure14_entries()
EXAMPLE_VARIANTS = [v for _, v in reported_variants(MAIN_MODEL)]

# One rule per table / figure: (name of the rule, its outputs and its meta_ood.report function,
# "table" or "figure", input files, named input files, keyword arguments of the function).
REPORT_TARGETS = [
    (
        "table1",
        "table",
        entry_paths(PIXEL_ENTRIES + MIOU_ENTRIES),
        {},
        {"pixel_entries": PIXEL_ENTRIES, "miou_entries": MIOU_ENTRIES},
    ),
    ("table2", "table", entry_paths(TABLE2_ENTRIES), {}, {"entries": TABLE2_ENTRIES}),
    ("table3", "table", entry_paths(TABLE3_ENTRIES), {}, {"entries": TABLE3_ENTRIES}),
    ("table_components", "table", entry_paths(TABLE2_ENTRIES), {}, {"entries": TABLE2_ENTRIES}),
    ("figure3", "figure", entry_paths(PIXEL_ENTRIES), {}, {"entries": PIXEL_ENTRIES}),
    ("figure4", "figure", entry_paths(PIXEL_ENTRIES), {}, {"entries": PIXEL_ENTRIES}),
    ("figure5", "figure", entry_paths(MIOU_ENTRIES), {}, {"miou_entries": MIOU_ENTRIES}),
    ("figure7", "figure", entry_paths(TABLE2_ENTRIES), {}, {"entries": TABLE2_ENTRIES}),
    (
        "figure14",
        "figure",
        entry_paths(FIG14_ENTRIES, keys=("miou_path", "pixel_path")),
        {},
        {"entries": FIG14_ENTRIES},
    ),
    (
        "examples",
        "figure",
        [],
        {
            "stores": [store_index(MAIN_MODEL, v, "lostandfound") for v in EXAMPLE_VARIANTS],
            "meta": [
                f"{RESULTS}/meta/{MAIN_MODEL}/{v}/lostandfound/{EXAMPLE_TAG}.parquet"
                for v in EXAMPLE_VARIANTS
            ],
        },
        # segments with P(FP) > meta.threshold are drawn as removed, as table 2 counts them
        {**example_args(), "meta_threshold": config["meta"]["threshold"]},
    ),
]


for name, kind, files, named_files, args in REPORT_TARGETS + SMIYC_REPORT_TARGETS:

    rule:
        name:
            f"{name}"
        input:
            *files,
            **named_files,
        output:
            **report_outputs(name, kind),
        params:
            function=name,
            args=args,
        log:
            f"{LOGS}/report/{name}.log",
        benchmark:
            f"{BENCH}/report/{name}.tsv"
        conda:
            "../../envs/analysis.yaml"
        script:
            "../scripts/report.py"


rule summary:
    input:
        pixel=entry_paths(PIXEL_ENTRIES + MIOU_ENTRIES),
        errors=entry_paths(TABLE2_ENTRIES) if "lostandfound" in SEGMENT_DATASETS else [],
    output:
        md=f"{RESULTS}/summary.md",
    params:
        pixel_entries=PIXEL_ENTRIES,
        miou_entries=MIOU_ENTRIES,
        error_entries=TABLE2_ENTRIES if "lostandfound" in SEGMENT_DATASETS else [],
        run=RUN,
    log:
        f"{LOGS}/report/summary.log",
    benchmark:
        f"{BENCH}/report/summary.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/summary.py"
