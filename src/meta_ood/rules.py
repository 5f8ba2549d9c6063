"""Glue between Snakemake scripts and the library: log redirection and clean error reporting.

A rule's script calls :func:`run_rule` with the ``snakemake`` object and one library function.
Everything the function prints (tqdm bars, warnings, logging) goes to the rule's log file; a
:class:`~meta_ood.errors.InputError` ends the job with its one-line message (in the log and on
the console), not a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meta_ood.errors import InputError


def setup_logging(stream) -> None:
    """Send library logging (INFO and up) to ``stream`` with timestamps."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


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
            log = stack.enter_context(open(log_path, "w", buffering=1, encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
            setup_logging(log)
        else:
            setup_logging(sys.stderr)
        limit_threads(int(getattr(snakemake, "threads", 1) or 1))
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
