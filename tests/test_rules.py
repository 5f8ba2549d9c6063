"""Rule glue: a job's log holds lines, not redrawn progress bars; long jobs show progress on the terminal."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
from tqdm import tqdm

from meta_ood.errors import InputError
from meta_ood.rules import ProgressLog, job_label, run_rule


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_bar_states_are_thinned_in_the_log_and_relayed_late_to_the_console():
    log, console, clock = io.StringIO(), io.StringIO(), Clock()
    stream = ProgressLog(log, console, "train_baseline model=tiny", log_every=10, console_every=30, clock=clock)
    stream.write("a plain line\n")
    for step in range(100):  # one bar state per second, as tqdm draws them: "\r<state>", then flush
        clock.now = float(step)
        stream.write(f"\repoch 1/2: {step}%")
        stream.flush()
    stream.write("\repoch 1/2: 100%\n")  # tqdm's close: the final state and a newline
    stream.write("after\n")
    stream.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "a plain line" and lines[-2:] == ["epoch 1/2: 100%", "after"]
    # states at t = 0, 10, ..., 90 (every 10 s), then the final one
    assert lines[1:-2] == [f"epoch 1/2: {t}%" for t in range(0, 100, 10)]
    # the console: nothing in the first 30 s, then one line every 30 s, named after the job
    assert console.getvalue().splitlines() == [f"[train_baseline model=tiny] epoch 1/2: {t}%" for t in (30, 60, 90)]


def test_text_without_carriage_returns_passes_unchanged():
    log = io.StringIO()
    stream = ProgressLog(log, None, "x", clock=Clock())
    text = "line 1\nline 2\r\nline 3\n"
    stream.write(text[:9])
    stream.write(text[9:])
    stream.close()
    assert log.getvalue() == "line 1\nline 2\nline 3\n"


def test_unfinished_last_state_is_written_on_close():
    log, clock = io.StringIO(), Clock()
    stream = ProgressLog(log, None, "x", log_every=10, clock=clock)
    stream.write("\rstep 1")
    stream.flush()
    clock.now = 1.0
    stream.write("\rstep 2")
    stream.flush()
    stream.close()
    assert log.getvalue().splitlines() == ["step 1", "step 2"]


def _job(tmp_path, rule="pixel_eval", **wildcards):
    return SimpleNamespace(log=[str(tmp_path / "logs" / "job.log")], rule=rule, threads=1,
                           wildcards=SimpleNamespace(items=lambda: wildcards.items()))


def test_job_label_names_rule_and_wildcards(tmp_path):
    assert job_label(_job(tmp_path, model="tiny", dataset="laf")) == "pixel_eval model=tiny dataset=laf"
    assert job_label(SimpleNamespace(rule="all")) == "all"


def test_run_rule_logs_a_tqdm_bar_as_lines_and_keeps_fonttools_quiet(tmp_path):
    def work(n):
        for _ in tqdm(range(n), desc="images", mininterval=0):
            pass
        logging.getLogger("fontTools.subset").info("subsetting glyphs")
        logging.getLogger("meta_ood.x").info("a result")
        return n

    job = _job(tmp_path, model="tiny")
    assert run_rule(job, work, 5) == 5
    text = (tmp_path / "logs" / "job.log").read_text()
    assert "\r" not in text
    assert "images: 100%" in text and "a result" in text and "subsetting glyphs" not in text


def test_run_rule_input_error_is_one_line_on_the_console(tmp_path, capsys, monkeypatch):
    import sys

    console = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", console)

    def bad():
        raise InputError("x.png: not a PNG (convert it)")

    with pytest.raises(SystemExit):
        run_rule(_job(tmp_path), bad)
    assert console.getvalue() == "meta-ood error in rule pixel_eval: x.png: not a PNG (convert it)\n"
    assert "x.png: not a PNG" in (tmp_path / "logs" / "job.log").read_text()
