"""``meta-ood run``: the configuration of a Snakemake command line is checked before Snakemake starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from meta_ood import runner
from meta_ood.cli import main


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def no_exec(monkeypatch):
    """Record the exec instead of replacing the test process by Snakemake."""
    calls = []
    monkeypatch.setattr(runner.os, "execv", lambda exe, argv: calls.append((exe, list(argv))))
    return calls


@pytest.mark.parametrize("args, expected", [
    (["--configfile", "a.yaml"], ["a.yaml"]),
    (["--configfile=a.yaml"], ["a.yaml"]),
    (["--configfiles", "a.yaml", "b.yaml", "-n"], ["a.yaml", "b.yaml"]),
    (["-n", "--configfile", "a.yaml", "b.yaml", "--cores", "2"], ["a.yaml", "b.yaml"]),
    (["--configfile", "a.yaml", "--profile", "p", "--configfile", "b.yaml"], ["a.yaml", "b.yaml"]),
    (["results/x/tables/table1.md", "--cores", "2"], ["./config.yaml"]),
    (["-s", "wf/Snakefile"], ["wf/config.yaml"]),
])
def test_config_files_of_a_command_line(args, expected):
    """The files Snakemake would read, in order; none given: config.yaml beside the Snakefile."""
    assert [os.path.normpath(p) for p in runner.config_files(args)] == [os.path.normpath(p) for p in expected]


def test_valid_configuration_execs_snakemake_with_the_same_arguments(no_exec, tmp_path, capsys):
    cfg = write(tmp_path / "my.yaml", "run: mine\nseed: 3\n")
    args = ["-n", "--cores", "2", "--configfile", str(cfg), "--config", "seed=5", "run=other"]
    assert main(["run", *args]) == 0
    assert no_exec == [(sys.executable, [sys.executable, "-m", "snakemake", *args])]
    # --config on top of the file, read as Snakemake reads it
    assert "run 'other'" in capsys.readouterr().err
    resolved = runner.check_command_line(args)
    assert resolved["seed"] == 5 and resolved["run"] == "other"


@pytest.mark.parametrize("make_args, fragments", [
    (lambda d: ["--configfile", str(d / "missing.yaml")], ["missing.yaml: config file not found"]),
    (lambda d: ["--configfile", str(write(d / "syntax.yaml", "run: [a\n"))], ["syntax.yaml:2: not valid YAML"]),
    (lambda d: ["--configfile", str(write(d / "dup.yaml", "run: a\nseed: 1\nrun: b\n"))],
     ["dup.yaml:3: key 'run' is given twice"]),
    (lambda d: ["--configfile", str(write(d / "typo.yaml", "run: a\nseeed: 1\n"))], ["seeed", "unknown key"]),
    (lambda d: ["--configfile", str(write(d / "ok.yaml", "run: a\n")), "--config", "run=.."],
     ["'..' is not a valid run name"]),
    (lambda d: ["--configfile", str(write(d / "ok.yaml", "run: a\n")), "--config", "nokeyvalue"],
     ["--config nokeyvalue", "key=value"]),
    (lambda d: ["--configfile", str(write(d / "ok.yaml", "run: a\n")), "--config"], ["--config: no key=value"]),
])
def test_bad_configuration_is_one_line_per_problem_and_nothing_starts(no_exec, tmp_path, capsys, make_args,
                                                                     fragments):
    assert main(["run", "-n", *make_args(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert no_exec == []
    assert "Traceback" not in err and err.rstrip().endswith("meta-ood: nothing was started")
    for fragment in fragments:
        assert fragment in err
    assert all(line.startswith("meta-ood: ") for line in err.splitlines())


def test_every_problem_of_every_file_at_once(no_exec, tmp_path, capsys):
    bad = write(tmp_path / "bad.yaml", "run: [a\n")
    args = ["--configfile", str(bad), str(tmp_path / "gone.yaml"), "--config", "oops"]
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:2" in err and "gone.yaml: config file not found" in err and "--config oops" in err
    assert no_exec == []


def test_help_is_ours_and_names_snakemake(capsys, no_exec):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: meta-ood run") and "snakemake --help" in out and no_exec == []


def test_console_script_missing_configfile_exits_2_without_traceback(tmp_path):
    """The whole path as a user types it: no Snakemake traceback, the file named, exit code 2."""
    proc = subprocess.run([sys.executable, "-m", "meta_ood.cli", "run", "-n", "--configfile", "nope.yaml"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "nope.yaml: config file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_console_script_runs_snakemake_when_valid(tmp_path):
    """A valid configuration reaches Snakemake: a dry run of the demo lists its jobs and writes nothing."""
    before = sorted(p.name for p in REPO.iterdir())
    proc = subprocess.run([sys.executable, "-m", "meta_ood.cli", "run", "-n", "--configfile",
                           "config/smoke.yaml", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "configuration valid (run 'smoke')" in proc.stderr
    assert "train_baseline" in proc.stdout + proc.stderr
    assert sorted(p.name for p in REPO.iterdir()) == before


def test_quiet_before_run_is_accepted(no_exec, tmp_path, capsys):
    """`meta-ood -q run ...` is `meta-ood run ...`: the check runs, nothing reaches argparse's stage parser."""
    assert main(["-q", "run", "--configfile", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: config file not found" in capsys.readouterr().err and no_exec == []


@pytest.mark.parametrize("entry", [
    "run=myrun", "seed=3", "lr=1e-3", "xx=0.5", "flag=True", "flag=true", "flag=False", "empty=", "qq='quoted'",
    'll=[a, 1, true]', "mm={a: 1, b: [x]}", "nn=-7", "inf=inf", "name=a=b", "k_1-x=v",
])
def test_config_entries_read_as_snakemake_reads_them(entry):
    from snakemake.cli import parse_config

    assert runner._config_entries([entry]) == parse_config([entry])


@pytest.mark.parametrize("entry", ["novalue", "1key=x", "key-=x", "=x", "a.b=1", "x=1"])
def test_malformed_config_entries_are_named(entry):
    from snakemake.cli import parse_config

    with pytest.raises(ValueError):
        parse_config([entry])
    with pytest.raises(runner.InputError, match=re.escape(f"--config {entry}: expected key=value")):
        runner._config_entries([entry])
