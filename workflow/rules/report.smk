# Report: the paper's tables and figures, rendered from result files only, and a summary of the run.

PIXEL_ENTRIES, MIOU_ENTRIES = table1_entries()
TABLE2_ENTRIES = table2_entries()
TABLE3_ENTRIES = table3_entries()
FIG14_ENTRIES = figure14_entries()


rule table1:
    input:
        entry_paths(PIXEL_ENTRIES + MIOU_ENTRIES),
    output:
        **report_outputs("table1", "table"),
    params:
        function="table1",
        args={"pixel_entries": PIXEL_ENTRIES, "miou_entries": MIOU_ENTRIES},
    log:
        f"{LOGS}/report/table1.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule table2:
    input:
        entry_paths(TABLE2_ENTRIES),
    output:
        **report_outputs("table2", "table"),
    params:
        function="table2",
        args={"entries": TABLE2_ENTRIES},
    log:
        f"{LOGS}/report/table2.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule table3:
    input:
        entry_paths(TABLE3_ENTRIES),
    output:
        **report_outputs("table3", "table"),
    params:
        function="table3",
        args={"entries": TABLE3_ENTRIES},
    log:
        f"{LOGS}/report/table3.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule table_components:
    input:
        entry_paths(TABLE2_ENTRIES),
    output:
        **report_outputs("table_components", "table"),
    params:
        function="table_components",
        args={"entries": TABLE2_ENTRIES},
    log:
        f"{LOGS}/report/table_components.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule figure3:
    input:
        entry_paths(PIXEL_ENTRIES),
    output:
        **report_outputs("figure3", "figure"),
    params:
        function="figure3",
        args={"entries": PIXEL_ENTRIES},
    log:
        f"{LOGS}/report/figure3.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule figure4:
    input:
        entry_paths(PIXEL_ENTRIES),
    output:
        **report_outputs("figure4", "figure"),
    params:
        function="figure4",
        args={"entries": PIXEL_ENTRIES},
    log:
        f"{LOGS}/report/figure4.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule figure5:
    input:
        entry_paths(MIOU_ENTRIES),
    output:
        **report_outputs("figure5", "figure"),
    params:
        function="figure5",
        args={"miou_entries": MIOU_ENTRIES},
    log:
        f"{LOGS}/report/figure5.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule figure7:
    input:
        entry_paths(TABLE2_ENTRIES),
    output:
        **report_outputs("figure7", "figure"),
    params:
        function="figure7",
        args={"entries": TABLE2_ENTRIES},
    log:
        f"{LOGS}/report/figure7.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule figure14:
    input:
        entry_paths(FIG14_ENTRIES, keys=("miou_path", "pixel_path")),
    output:
        **report_outputs("figure14", "figure"),
    params:
        function="figure14",
        args={"entries": FIG14_ENTRIES},
    log:
        f"{LOGS}/report/figure14.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/report.py"


rule examples:
    input:
        stores=[store_index(MAIN_MODEL, v, "lostandfound") for _, v in reported_variants(MAIN_MODEL)],
        meta=[
            f"{RESULTS}/meta/{MAIN_MODEL}/{v}/lostandfound/t{config['report']['example_threshold']:g}.parquet"
            for _, v in reported_variants(MAIN_MODEL)
        ],
    output:
        **report_outputs("examples", "figure"),
    params:
        function="examples",
        # segments with P(FP) > meta.threshold are drawn as removed, as table 2 counts them
        args={**example_args(), "meta_threshold": config["meta"]["threshold"]},
    log:
        f"{LOGS}/report/examples.log",
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
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/summary.py"
