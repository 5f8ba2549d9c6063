"""Glue between Snakemake scripts and the library: log redirection and clean error reporting.

A rule's script calls :func:`run_rule` with the ``snakemake`` object and one library function.
Everything the function prints (tqdm bars, warnings, logging) goes to the rule's log file, progress
bars as one line every :data:`LOG_EVERY` seconds instead of carriage-return redraws; a long job's
bar also reaches the terminal Snakemake runs in, one line every :data:`CONSOLE_EVERY` seconds, named
after the job. A :class:`~meta_ood.errors.InputError` ends the job with its one-line message (in
the log and on the console), not a traceback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from meta_ood.errors import InputError
from meta_ood.memory import keep_freed_memory

#: Seconds between two progress-bar lines in a rule's log (the final state is always written).
LOG_EVERY = 10.0
#: Seconds a job runs before its progress appears on the terminal, and between two such lines.
CONSOLE_EVERY = 30.0
#: Libraries whose INFO messages are noise in logs and on the terminal (font subsetting of PDFs).
QUIET_LOGGERS = ("fontTools", "matplotlib", "PIL")


class ProgressLog(io.TextIOBase):
    """A rule's log stream: text lines pass through, progress bars (text ended by a carriage return and
    redrawn in place) become one line every ``log_every`` seconds in the log and, after ``console_every``
    seconds, one line every ``console_every`` seconds on ``console`` prefixed with ``label``."""

    def __init__(self, log: TextIO, console: TextIO | None, label: str, log_every: float = LOG_EVERY,
                 console_every: float = CONSOLE_EVERY, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.log, self.console, self.label, self.clock = log, console, label, clock
        self.log_every, self.console_every = log_every, console_every
        self.pending = self.seen = ""
        self.start = clock()
        self.last_log = self.last_console = -float("inf")

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        parts = text.replace("\r\n", "\n").split("\r")
        for k, part in enumerate(parts):
            if k:  # a carriage return: what came before it was a bar state, drawn over now
                if self.pending != self.seen:
                    self._state(final=False)
                self.pending = ""
            *lines, self.pending = (self.pending + part).split("\n")
            for line in lines:
                self.log.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._state(final=False)
        self.log.flush()

    def close(self) -> None:
        if self.pending.strip():
            self._state(final=True)
        self.pending = ""
        self.log.flush()
        super().close()

    def _state(self, final: bool) -> None:
        """The current bar state (``pending``): to the log and the console when their interval has passed."""
        state, self.seen = self.pending.strip(), self.pending
        if not state:
            return
        now = self.clock()
        if final or now - self.last_log >= self.log_every:
            self.log.write(state + "\n")
            self.last_log = now
        if self.console is not None and now - self.start >= self.console_every and (
                now - self.last_console >= self.console_every):
            self.console.write(f"[{self.label}] {state}\n")
            self.console.flush()
            self.last_console = now


def job_label(snakemake: Any) -> str:
    """``rule key=value ...`` of a Snakemake job, for its lines on the terminal."""
    wildcards = getattr(snakemake, "wildcards", None)
    items = dict(wildcards.items()) if hasattr(wildcards, "items") else {}
    return " ".join([str(getattr(snakemake, "rule", "?")), *(f"{k}={v}" for k, v in items.items())])


def setup_logging(stream) -> None:
    """Send library logging (INFO and up) to ``stream`` with timestamps."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    quiet_library_loggers()
    logging.captureWarnings(True)


def quiet_library_loggers() -> None:
    """Only warnings and errors from :data:`QUIET_LOGGERS` (fontTools logs every PDF font subset at INFO)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def limit_threads(n: int) -> None:
    """Use at most ``n`` threads in BLAS and torch, so parallel jobs do not oversubscribe the cores."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def run_rule(snakemake: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``func(*args, **kwargs)`` with stdout/stderr/logging redirected to the rule's first log file."""
    log_path = Path(str(snakemake.log[0])) if len(snakemake.log) else None
    console = sys.__stderr__
    stack = contextlib.ExitStack()
    with stack:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = stack.enter_context(open(log_path, "w", buffering=1, encoding="utf-8"))
            log = stack.enter_context(contextlib.closing(ProgressLog(log_file, console, job_label(snakemake))))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
            setup_logging(log)
        else:
            setup_logging(sys.stderr)
        limit_threads(int(getattr(snakemake, "threads", 1) or 1))
        keep_freed_memory()  # a rule script runs in a process of its own
        rule = getattr(snakemake, "rule", "?")
        logging.getLogger("meta_ood").info("rule %s: %s", rule, getattr(func, "__qualname__", func))
        start = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except InputError as exc:
            logging.getLogger("meta_ood").error("%s", exc)
            print(f"meta-ood error in rule {rule}: {exc}", file=console)
            sys.exit(1)
        except Exception:
            logging.getLogger("meta_ood").exception("rule %s failed", rule)
            raise
        logging.getLogger("meta_ood").info("done in %.1f s", time.perf_counter() - start)
        return result
