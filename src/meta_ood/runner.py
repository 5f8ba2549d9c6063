"""``meta-ood run [SNAKEMAKE ARGS]``: Snakemake, after the configuration it is given has been checked.

Snakemake reads ``--configfile`` files itself before the workflow exists: a missing or unreadable file, or a
YAML syntax error, ends in its traceback or in a message that names neither file nor line. This wrapper reads
the same files (and ``--config`` values) with :func:`meta_ood.config.resolve_config` first, prints every problem
as one ``meta-ood: error:`` line and exits with 2; with a valid configuration it replaces itself by Snakemake
with the arguments unchanged, so everything Snakemake accepts works as before.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

from meta_ood.config import resolve_config
from meta_ood.errors import InputError

#: Snakemake's options that take config files, and those that take ``key=value`` config entries.
CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")
CONFIG_OPTIONS = ("--config", "-C")
#: Snakemake options giving the Snakefile (its folder holds the default ``config.yaml``).
SNAKEFILE_OPTIONS = ("--snakefile", "-s")
#: Config keys Snakemake accepts on its command line.
_CONFIG_KEY = re.compile(r"[a-zA-Z_][\w-]*\w")

USAGE = """usage: meta-ood run [SNAKEMAKE ARGS ...]

Run the workflow with Snakemake after checking its configuration: every --configfile (none: the
config.yaml beside the Snakefile) and every --config key=value, merged in order and validated
against the schema. Problems are listed one per line (file, line and key) and nothing starts;
otherwise Snakemake runs with exactly these arguments, e.g.

  meta-ood run --profile profiles/local --cores 8 --configfile my.yaml
  meta-ood run -n --configfile config/paper.yaml --config check_data=false

See `snakemake --help` for Snakemake's own options.
"""


def _option_values(args: Sequence[str], names: Sequence[str]) -> tuple[list[str], bool]:
    """The values given to any of ``names`` (``--name a b``, ``--name=a``), and whether one of them appeared.

    Like Snakemake's parser, a multi-value option takes the following arguments up to the next one that starts
    with ``-``.
    """
    values, seen, i = [], False, 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if name in names and arg.startswith("-"):
            seen = True
            if eq:
                values.append(inline)
            else:
                i += 1
                while i < len(args) and not args[i].startswith("-"):
                    values.append(args[i])
                    i += 1
                continue
        i += 1
    return values, seen


def _config_value(text: str) -> Any:
    """One ``--config`` value as Snakemake reads it: an int, a float, ``True`` / ``False``, YAML (all scalars
    as text: lists and mappings), else the text itself."""
    if text == "":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    if text in ("True", "False"):
        return text == "True"
    try:
        return yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError:
        return text


def _config_entries(entries: Sequence[str]) -> dict[str, Any]:
    """``--config key=value`` entries as Snakemake reads them; InputError naming every malformed one."""
    config, problems = {}, []
    for entry in entries:
        key, eq, value = entry.partition("=")
        if not eq or _CONFIG_KEY.fullmatch(key) is None:
            problems.append(f"--config {entry}: expected key=value with a plain key name (e.g. --config run=myrun)")
            continue
        config[key] = _config_value(value.strip("'\""))
    if problems:
        raise InputError("\n".join(problems))
    return config


def config_files(args: Sequence[str], cwd: str | os.PathLike = ".") -> list[str]:
    """The config files a Snakemake command line runs: its ``--configfile`` files, else the demo's ``config.yaml``
    beside the Snakefile (``--snakefile``, default ``Snakefile`` in ``cwd``), as the workflow reads them."""
    files, _ = _option_values(args, CONFIGFILE_OPTIONS)
    if files:
        return files
    snakefiles, _ = _option_values(args, SNAKEFILE_OPTIONS)
    snakefile = Path(cwd, snakefiles[0] if snakefiles else "Snakefile")
    return [str(snakefile.parent / "config.yaml")]


def check_command_line(args: Sequence[str], cwd: str | os.PathLike = ".") -> dict:
    """Resolve and validate the configuration a Snakemake command line would run; the resolved configuration.

    InputError naming every problem: files that are missing or unreadable, YAML errors (file and line), schema
    violations (file, line and key), malformed ``--config`` entries.
    """
    entries, seen = _option_values(args, CONFIG_OPTIONS)
    problems, overrides = [], {}
    try:
        if seen and not entries:
            raise InputError("--config: no key=value given (e.g. --config run=myrun)")
        overrides = _config_entries(entries)
    except InputError as exc:
        problems.append(str(exc))
    try:
        resolved = resolve_config([str(Path(cwd, path)) for path in config_files(args, cwd)], overrides=overrides)[1]
    except InputError as exc:
        problems.append(str(exc))
    if problems:
        raise InputError("\n".join(problems))
    return resolved


def run(args: Sequence[str]) -> int:
    """Check the configuration of ``snakemake ARGS``, then exec Snakemake; 2 and one line per problem otherwise."""
    if list(args) in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    try:
        if find_spec("snakemake") is None:
            raise InputError("Snakemake is not installed in this environment (pip install 'meta-ood[workflow]', "
                             "or pip install -r requirements.txt)")
        resolved = check_command_line(args)
    except InputError as exc:
        for line in str(exc).splitlines():
            print(f"meta-ood: error: {line}", file=sys.stderr)
        print("meta-ood: nothing was started", file=sys.stderr)
        return 2
    print(f"meta-ood: configuration valid (run '{resolved['run']}'); starting Snakemake", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "snakemake", *args])
    return 0  # not reached: execv replaces this process
