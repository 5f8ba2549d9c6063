"""Config input: strict YAML reading, every schema problem on one line, run names confined to their folders."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake
from meta_ood.config import (
    RUN_NAME_RULE,
    RUN_ROOTS,
    StrictLoader,
    check_run_name,
    load_config,
    load_schema,
    main,
    read_config_file,
    resolve_config,
    run_folders,
    validate_config,
)
from meta_ood.errors import InputError

# Names that must never become a run folder: escapes, paths, separators, hidden, empty, whitespace, odd characters.
HOSTILE_RUN_NAMES = [
    "..", ".", "", " ", "\t", "run\n", " run", "run ", "my run", "../x", "x/..", "../../etc", "a/b", "/", "/tmp",
    "/abs/path", "a\\b", "..\\..", "C:\\x", ".hidden", ".git", "...", "~", "~user", "$HOME", "a*", "a?b", "-rf",
    "_x", "x:y", "é", "run\x00", "a" * 101,
]
GOOD_RUN_NAMES = ["main", "demo", "paper", "wrn38_lam0.9", "a.b-c_1", "a..b", "2024", "R", "a" * 100]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------- strict YAML


@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("1E5", 100000.0), ("2.5e-4", 0.00025), ("1.0e5", 100000.0), ("+1e-3", 0.001),
    ("-1e-6", -1e-6), ("-.5", -0.5), ("1.0e-5", 1e-5), ("0.5", 0.5), ("1_000", 1000), ("'1e-3'", "1e-3"),
    ("09", "09"), ("1e", "1e"), ("1.2.3", "1.2.3"), ("e5", "e5"), ("0x10", 16), ("true", True),
])
def test_strict_loader_reads_exponent_numbers_as_floats(text, value):
    """YAML 1.1 reads 1e-3 as text; config files mean a number (as YAML 1.2 and JSON do); quoted text stays text."""
    got = yaml.load(f"v: {text}\n", Loader=StrictLoader)["v"]
    assert got == value and type(got) is type(value)


def test_strict_loader_changes_no_other_loader():
    assert yaml.safe_load("v: 1e-3") == {"v": "1e-3"}


def test_duplicated_keys_at_any_depth_name_file_line_and_key(tmp_path):
    path = write(tmp_path / "dup.yaml", "run: x\nreport:\n  examples: 1\nseed: 1\nreport:\n  examples: 2\n"
                                         "  examples: 3\nmodels:\n  tiny:\n    finetune: {lr: 1e-3, lr: 2e-3}\n")
    with pytest.raises(InputError) as info:
        read_config_file(path)
    lines = str(info.value).splitlines()
    assert lines[0] == (f"{path}:5: key 'report' is given twice (first on line 2; YAML readers silently keep only "
                        "the last one: delete one of them or merge the two)")
    assert lines[1].startswith(f"{path}:7: key 'report.examples' is given twice (first on line 6;")
    assert lines[2].startswith(f"{path}:10: key 'models.tiny.finetune.lr' is given twice (first on line 10;")
    assert len(lines) == 3


def test_same_key_in_different_blocks_and_merge_keys_are_not_duplicates(tmp_path):
    path = write(tmp_path / "ok.yaml", "base: &b {lr: 1e-3, epochs: 2}\nmodels:\n  a: {finetune: {<<: *b, epochs: 3}}\n"
                                        "  b: {finetune: {epochs: 4}}\n")
    data = read_config_file(path).data
    assert data["models"]["a"]["finetune"] == {"lr": 0.001, "epochs": 3}


@pytest.mark.parametrize("text, line, needle", [
    ("run: x\nseed: 1\n  models: 2\n", 3, "mapping values are not allowed here"),
    ("run: x\nreport:\n\texamples: 1\n", 3, "indent with spaces, not tabs"),
    ("run: x\nmodels: [a, b\nseed: 1\n", 3, "while parsing a flow sequence on line 2 (check the indentation"),
    ("run: !!python/tuple [1, 2]\n", 1, "use plain values only"),
])
def test_yaml_syntax_errors_name_file_and_line(tmp_path, text, line, needle):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(InputError) as info:
        read_config_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: not valid YAML: ") and needle in message and "\n" not in message


def test_json_config_files_are_read_and_their_duplicates_refused(tmp_path):
    assert read_config_file(write(tmp_path / "c.json", '{"run":"j","seed":3,"x":{"lr":1e-3}}')).data == \
        {"run": "j", "seed": 3, "x": {"lr": 0.001}}
    with pytest.raises(InputError, match=r"c2\.json:1: key 'seed' is given twice"):
        read_config_file(write(tmp_path / "c2.json", '{"seed": 1, "seed": 2}'))


def test_config_file_must_hold_a_mapping(tmp_path):
    with pytest.raises(InputError, match=r"l\.yaml: holds a list, not a mapping of config keys \(write one"):
        read_config_file(write(tmp_path / "l.yaml", "- run: x\n"))
    assert read_config_file(write(tmp_path / "empty.yaml", "# nothing\n")).data == {}
    with pytest.raises(InputError, match=r"none\.yaml: config file not found \(check the path"):
        read_config_file(tmp_path / "none.yaml")


def test_load_config_gives_floats_for_exponent_numbers(tmp_path):
    path = write(tmp_path / "c.yaml", "models:\n  m:\n    finetune: {lr: 1e-5, weight_decay: 1e-4}\n")
    finetune = load_config(path)["models"]["m"]["finetune"]
    assert finetune["lr"] == 1e-5 and finetune["weight_decay"] == 1e-4 and isinstance(finetune["lr"], float)


def test_cli_option_files_are_read_strictly(tmp_path):
    from meta_ood.cli import _load_mapping

    assert _load_mapping(str(write(tmp_path / "o.yaml", "lr: 1e-5\nepochs: 2\n")), "training options") == \
        {"lr": 1e-5, "epochs": 2}
    with pytest.raises(InputError, match=r"o2\.yaml:2: key 'lr' is given twice"):
        _load_mapping(str(write(tmp_path / "o2.yaml", "lr: 1e-5\nlr: 1e-4\n")), "training options")
    with pytest.raises(InputError, match="training options file not found"):
        _load_mapping(str(tmp_path / "none.yaml"), "training options")


def test_config_module_imports_without_numpy():
    """The workflow imports meta_ood.config in Snakemake's environment, which may lack numpy and PIL."""
    code = "import sys, meta_ood.config; sys.exit(int('numpy' in sys.modules or 'PIL' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# ----------------------------------------------------------------------------------------- schema messages


def test_every_schema_problem_is_reported_at_once_one_line_each():
    bad = {
        "run": "..",
        "sed": 1,
        "coco_filter": {"min_sise": 3},
        "models": {"tiny": {"finetune": {"lr": "1e-3", "epochs": None, "crop": 4}}},
        "evaluation": {"thresholds": [0.1, "x"], "scorer": "entropie", "n_boot": 1e3},
    }
    with pytest.raises(InputError) as info:
        validate_config(bad)
    lines = str(info.value).splitlines()
    assert set(lines) == {
        "coco_filter.min_sise: unknown key (did you mean 'min_size'? 'coco_filter' takes: min_size, exclude, ood_id)",
        "evaluation.n_boot: 1000.0 is not of type 'integer' (write a whole number, e.g. 1000)",
        "evaluation.scorer: 'entropie' is not one of ['entropy', 'variation_ratio', 'margin', 'msp', 'max_logit', "
        "'energy'] (use one of these)",
        "evaluation.thresholds[1]: 'x' is not of type 'number' (give a number)",
        "models.tiny.finetune.crop: 4 is less than the minimum of 8 (Random crop, one side (square, paper 480) or "
        "[height, width]; default 480)",
        "models.tiny.finetune.epochs: None is not of type 'integer' (the key has no value: give a whole number, or "
        "delete the line to take the default, 4)",
        "models.tiny.finetune.lr: '1e-3' is not of type 'number' (write the number without quotes, e.g. lr: 1e-3)",
        f"run: '..' is not a valid run name ({RUN_NAME_RULE})",
        "sed: unknown key (did you mean 'seed'? the top level takes: " + ", ".join(load_schema()["properties"]) + ")",
    }
    assert len(lines) == 9


def test_problems_name_the_file_and_line_that_set_the_key(tmp_path):
    first = write(tmp_path / "a.yaml", "run: mine\nmodels:\n  tiny:\n    finetune:\n      lr: '1e-3'\n      lam: 2\n")
    second = write(tmp_path / "b.yaml", "models:\n  tiny:\n    finetune:\n      lam: 0.5\n      epocs: 3\n")
    with pytest.raises(InputError) as info:
        resolve_config([first, second], overrides={"seed": -1})
    assert str(info.value).splitlines() == [
        f"{second}:5: models.tiny.finetune.epocs: unknown key (did you mean 'epochs'? 'models.tiny.finetune' takes: "
        + ", ".join(load_schema()["properties"]["models"]["additionalProperties"]["properties"]["finetune"]["properties"])
        + ")",
        f"{first}:5: models.tiny.finetune.lr: '1e-3' is not of type 'number' (write the number without quotes, "
        "e.g. lr: 1e-3)",
        "--config: seed: -1 is less than the minimum of 0 (Master seed (demo data, COCO draws, training, bootstrap); "
        "the same config gives the same tables; default 0)",
    ]


def test_file_problems_of_every_file_are_reported_before_validation(tmp_path):
    one = write(tmp_path / "one.yaml", "seed: 1\nseed: 2\n")
    two = write(tmp_path / "two.yaml", "run: [\n")
    with pytest.raises(InputError) as info:
        resolve_config([one, two, tmp_path / "three.yaml"])
    lines = str(info.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{one}:2", f"{two}:2", f"{tmp_path / 'three.yaml'}"]


def test_overrides_go_on_top_of_files_in_order(tmp_path):
    first = write(tmp_path / "a.yaml", "run: a\nmodels:\n  m: {finetune: {lr: 1e-3, epochs: 2}}\n")
    second = write(tmp_path / "b.yaml", "models:\n  m: {finetune: {epochs: 3}}\n")
    raw, resolved = resolve_config([first, second], overrides={"run": "c"})
    assert raw == {"run": "c", "models": {"m": {"finetune": {"lr": 0.001, "epochs": 3}}}}
    assert resolved["models"]["m"]["finetune"]["lam"] == 0.9 and resolved["run"] == "c"


def test_non_text_keys_are_refused():
    with pytest.raises(InputError) as info:
        validate_config({"models": {1: {"arch": "tiny"}}})
    assert str(info.value).splitlines() == ["models: the key 1 is not text (put it in quotes: '1')"]


@pytest.mark.parametrize("config", [
    {},
    {"run": "x", "models": {"a": {"finetune": {"lr": 0.001}}, "b": {}}, "evaluation": {"n_boot": 5}},
    "demo",
])
def test_defaults_are_filled_as_snakemake_validate_fills_them(config):
    """The workflow used snakemake.utils.validate(config, schema, set_default=True): the same result, key for key."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config.yaml").read_text()) if config == "demo" else config
    theirs = copy.deepcopy(config)
    validate(theirs, str(REPO / "src" / "meta_ood" / "config.schema.yaml"), set_default=True)
    assert validate_config(config) == theirs


def test_main_checks_files_like_the_workflow(tmp_path, capsys):
    assert main([str(REPO / "config.yaml")]) == 0
    assert "config.yaml: valid (run 'demo'" in capsys.readouterr().out
    bad = write(tmp_path / "bad.yaml", "run: x\nreport:\n  examples: 1\n   main_model: a\n")
    assert main([str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"{bad}:4: not valid YAML: ")


# ----------------------------------------------------------------------------------------- run names


@pytest.mark.parametrize("name", HOSTILE_RUN_NAMES, ids=repr)
def test_hostile_run_names_are_refused(name):
    with pytest.raises(InputError) as info:
        validate_config({"run": name})
    assert str(info.value) == f"run: {name!r} is not a valid run name ({RUN_NAME_RULE})"
    with pytest.raises(InputError, match="^run: "):
        check_run_name(name)


@pytest.mark.parametrize("name", [None, 3, 1e5, ["a"], {"a": 1}], ids=repr)
def test_run_names_that_are_not_text_are_refused(name):
    with pytest.raises(InputError, match=r"^run: .* is not of type 'string'"):
        validate_config({"run": name})


@pytest.mark.parametrize("name", GOOD_RUN_NAMES)
def test_accepted_run_names_stay_inside_their_three_folders(name, tmp_path):
    assert validate_config({"run": name})["run"] == name
    folders = run_folders(name)
    assert list(folders) == list(RUN_ROOTS) == ["results", "logs", "benchmarks"]
    for root, folder in folders.items():
        resolved = (tmp_path / folder).resolve()
        assert resolved.parent == (tmp_path / root).resolve() and resolved.name == name
        assert os.path.normpath(folder) == folder


def test_schema_run_pattern_says_what_the_library_says():
    """The schema documents the rule; jsonschema's `$` also matches before a final newline, which the library refuses."""
    import jsonschema

    run_schema = load_schema()["properties"]["run"]
    for name in HOSTILE_RUN_NAMES + GOOD_RUN_NAMES:
        schema_ok = jsonschema.Draft202012Validator(run_schema).is_valid(name)
        library_ok = _accepts(name)
        assert schema_ok == library_ok or (name.endswith("\n") and not library_ok), name


def _accepts(name: str) -> bool:
    try:
        check_run_name(name)
    except InputError:
        return False
    return True


# ----------------------------------------------------------------------------------------- the workflow


def _no_traceback_one_problem_per_line(proc: subprocess.CompletedProcess, expected: list[str]) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out and "Job stats" not in out, out[-3000:]
    lines = proc.stderr.splitlines()
    assert "meta-ood: the configuration cannot run (nothing was started):" in lines, out[-3000:]
    for line in expected:
        assert line in lines, (line, out[-3000:])
    return out


def _nothing_written(work: Path) -> None:
    assert not any((work / root).exists() for root in RUN_ROOTS)
    assert not (work / "data").exists()


@pytest.mark.slow
def test_workflow_refuses_duplicated_keys_before_anything(tmp_path):
    path = write(tmp_path / "my.yaml", "run: mine\ndemo: {enabled: true}\nreport:\n  examples: 1\nreport:\n"
                                         "  examples: 2\n")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(path))
    _no_traceback_one_problem_per_line(proc, [
        f"{path}:5: key 'report' is given twice (first on line 3; YAML readers silently keep only the last one: "
        "delete one of them or merge the two)"])
    _nothing_written(tmp_path)


@pytest.mark.slow
def test_workflow_lists_every_schema_problem_with_file_and_line(tmp_path):
    path = write(tmp_path / "my.yaml", "run: '..'\ndemo: {enabled: true}\ncoco_filter:\n  min_sise: 3\nmodels:\n"
                                         "  tiny:\n    finetune:\n      lr: '1e-3'\n")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(path))
    _no_traceback_one_problem_per_line(proc, [
        f"{path}:4: coco_filter.min_sise: unknown key (did you mean 'min_size'? 'coco_filter' takes: min_size, "
        "exclude, ood_id)",
        f"{path}:8: models.tiny.finetune.lr: '1e-3' is not of type 'number' (write the number without quotes, "
        "e.g. lr: 1e-3)",
        f"{path}:1: run: '..' is not a valid run name ({RUN_NAME_RULE})",
    ])
    _nothing_written(tmp_path)
    # the project's own files next to results/ are untouched by a run named '..'
    assert not (tmp_path / "config.yaml").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["..", ".", "/tmp/x", ".hidden"])
def test_workflow_refuses_hostile_run_names_given_with_config(tmp_path, name):
    proc = run_snakemake(tmp_path, "-n", "--config", f"run={name}")
    _no_traceback_one_problem_per_line(proc, [f"--config: run: {name!r} is not a valid run name ({RUN_NAME_RULE})"])
    _nothing_written(tmp_path)


@pytest.mark.slow
def test_workflow_names_the_line_of_a_syntax_error_in_the_demo_config(tmp_path):
    """Without --configfile the workflow reads config.yaml next to the Snakefile itself: file and line in the message.

    (A --configfile with a syntax error is read by Snakemake before the Snakefile runs; see the README.)
    """
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "Snakefile", repo / "Snakefile")
    for folder in ("workflow", "src", "envs"):
        (repo / folder).symlink_to(REPO / folder)
    lines = (REPO / "config.yaml").read_text().splitlines()
    line = lines.index("seed: 0") + 1
    lines[line - 1] = "  seed: 0"  # indented under `run: demo`: not valid YAML
    write(repo / "config.yaml", "\n".join(lines) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
           "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, timeout=300)
    out = _no_traceback_one_problem_per_line(proc, [])
    pattern = rf"^{re.escape(str(repo / 'config.yaml'))}:{line}: not valid YAML: .* \(check the indentation"
    assert re.search(pattern, proc.stderr, re.M), out[-3000:]
    _nothing_written(work)


@pytest.mark.slow
def test_workflow_reads_exponent_numbers_as_floats(tmp_path):
    """`lr: 1e-3` (YAML 1.1 text) reaches the rules as a float: the resolved config the run writes says so."""
    path = write(tmp_path / "my.yaml", "run: floats\ndemo: {enabled: true}\nmodels:\n  tiny:\n"
                                         "    finetune: {lr: 1e-3, weight_decay: 1e-5}\n    baseline_training: {lr: 2E-3}\n")
    proc = run_snakemake(tmp_path, "results/floats/config.yaml", "--configfile", str(path), cores=1)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    resolved = yaml.safe_load((tmp_path / "results/floats/config.yaml").read_text())
    assert resolved["models"]["tiny"]["finetune"]["lr"] == 0.001
    assert resolved["models"]["tiny"]["finetune"]["weight_decay"] == 1e-5
    assert resolved["models"]["tiny"]["baseline_training"]["lr"] == 0.002


@pytest.mark.slow
def test_every_planned_output_lies_in_the_run_folders(tmp_path):
    """A dry run of the whole demo: each output, log and benchmark resolves inside results/, logs/ or benchmarks/<run>/
    (the demo generator writes only its demo.root)."""
    run = "a.b-c_1"
    proc = run_snakemake(tmp_path, "-n", "--config", f"run={run}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    paths = [p.strip() for m in re.finditer(r"^\s+(?:output|log|benchmark): (.+)$", out, re.M)
             for p in m.group(1).replace(" (check log file(s) for error details)", "").split(", ")]
    assert len(paths) > 300, out[-3000:]
    allowed = [(tmp_path / folder).resolve() for folder in run_folders(run).values()] + [(tmp_path / "data/demo").resolve()]
    for path in paths:
        resolved = (tmp_path / path).resolve()
        assert any(resolved.is_relative_to(folder) for folder in allowed), path


@pytest.mark.parametrize("key", ["models", "smiyc.methods"])
@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "", "-x"])
def test_model_and_method_names_are_plain_folder_names(name, key):
    """Model and SMIYC method names become folders of the run (models/<name>/, smiyc/eval/<method>/)."""
    from meta_ood.config import validate_config

    value = {"arch": "tiny"} if key == "models" else "/some/folder"
    config = {"models": {name: value}} if key == "models" else {"smiyc": {"methods": {name: value}}}
    with pytest.raises(InputError, match=re.escape(key)):
        validate_config(config)
    ok = {"models": {"net_1.b": value}} if key == "models" else {"smiyc": {"methods": {"net_1.b": value}}}
    validate_config(ok)
