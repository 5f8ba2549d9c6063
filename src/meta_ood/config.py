"""Run configuration: strict reading of config files, JSON-schema validation with defaults, shared by Snakemake and the CLI.

Config files are read with :class:`StrictLoader` (a key given twice is an error, ``1e-3`` is a number) and
validated against :data:`SCHEMA`; every problem is one line naming the file (and line) or the key, what is
wrong and what to do, and all problems are reported at once. ``python -m meta_ood.config my.yaml`` checks
files the way the workflow does.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from meta_ood.errors import InputError

#: The config JSON schema (YAML), package data of the library; the workflow validates against the same file.
SCHEMA = resources.files("meta_ood") / "config.schema.yaml"

#: The folders of the working directory a run writes into, each in its own sub-folder ``<root>/<run>/``.
RUN_ROOTS = ("results", "logs", "benchmarks")
#: Longest accepted run name (a folder name; the schema's ``run.maxLength``).
RUN_NAME_MAX = 100
#: What a run name may be; the schema's ``run`` pattern says the same.
RUN_NAME_RULE = (f"a run name is one plain folder name below {', '.join(r + '/' for r in RUN_ROOTS)}: letters, digits, "
                 f"'_', '-' and '.', starting with a letter or digit, at most {RUN_NAME_MAX} characters, "
                 "e.g. 'paper' or 'wrn38_lam0.9'")
_RUN_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{RUN_NAME_MAX - 1}}}")

# Numbers that YAML 1.1 (PyYAML) reads as text but YAML 1.2 and JSON read as numbers: 1e-3, 1E5, 2.5e-4, 1.0e5, -.5.
_FLOAT_12 = re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+|[-+]?\.[0-9][0-9_]*)$")
_MERGE_TAG = "tag:yaml.org,2002:merge"

#: A key path in a configuration: mapping keys and list indices.
KeyPath = tuple[str | int, ...]


class DuplicateKeyError(yaml.YAMLError):
    """Keys given twice in one mapping of a YAML document: ``(key path, line, line of the first)`` each, lines from 1."""

    def __init__(self, duplicates: list[tuple[KeyPath, int, int]]):
        self.duplicates = duplicates
        super().__init__("; ".join(f"line {line}: key '{dotted(path)}' given twice (first on line {first})"
                                   for path, line, first in duplicates))


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for config files: a key given twice is an error (:class:`DuplicateKeyError`, all of them),
    and ``1e-3``-style scalars are floats as in YAML 1.2 and JSON (YAML 1.1 reads them as text).

    After loading, :attr:`lines` maps each key path (and list item) of the document to its line (from 1).
    """

    def __init__(self, stream: Any):
        super().__init__(stream)
        self.lines: dict[KeyPath, int] = {}

    def get_single_data(self) -> Any:
        """Compose the document, refuse duplicated keys, record key lines, then construct it."""
        node = self.get_single_node()
        if node is None:
            return None
        duplicates: dict[tuple[int, int], tuple[KeyPath, int, int]] = {}
        _walk_nodes(node, (), self.lines, duplicates, set())
        if duplicates:
            raise DuplicateKeyError(sorted(duplicates.values(), key=lambda d: d[1]))
        return self.construct_document(node)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))


def _walk_nodes(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int],
                duplicates: dict[tuple[int, int], tuple[KeyPath, int, int]], stack: set[int]) -> None:
    """Record the line of every key and list item below ``node`` and every key given twice in one mapping."""
    if id(node) in stack:  # a recursive alias
        return
    stack.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<: *anchor` merges are overridden by explicit keys by design; complex keys are rare
            line = key_node.start_mark.line + 1
            child = (*path, key_node.value)
            ident = (key_node.tag, key_node.value)
            if ident in first_seen:
                duplicates[(key_node.start_mark.line, key_node.start_mark.column)] = (child, line, first_seen[ident])
            else:
                first_seen[ident] = line
            lines.setdefault(child, line)
            _walk_nodes(value_node, child, lines, duplicates, stack)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines.setdefault(child, item.start_mark.line + 1)
            _walk_nodes(item, child, lines, duplicates, stack)
    stack.discard(id(node))


def dotted(path: Iterable[str | int]) -> str:
    """A key path as users write it: ``models.tiny.finetune.lr``, list items as ``thresholds[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(frozen=True)
class ConfigSource:
    """One layer of a configuration: its name (a file, or ``--config``), its values and the line of each key path."""

    name: str
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)


class _JsonDuplicate(Exception):
    """A key given twice in one JSON object (json gives no line)."""


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _JsonDuplicate(key)
        seen[key] = value
    return seen


def _syntax_problem(path: Path, exc: yaml.YAMLError, text: str) -> str:
    """One line for a YAML error: file, line, what the parser says and what to do."""
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text[: exc.position].count("\n") + 1
        return (f"{path}:{line}: not valid YAML: character {exc.character!r} is not allowed "
                "(remove it, or save the file as plain UTF-8 text)")
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"{path}: not valid YAML: {exc} (fix the file's syntax)"
    line = exc.problem_mark.line + 1
    problem = " ".join(str(exc.problem or "syntax error").split())
    context = ""
    if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
        context = f", {' '.join(exc.context.split())} on line {exc.context_mark.line + 1}"
    if isinstance(exc, yaml.constructor.ConstructorError):
        hint = "use plain values only: text, numbers, true/false, null, lists and mappings"
    elif "'\\t'" in problem:
        hint = "indent with spaces, not tabs"
    else:
        hint = ("check the indentation there and quote values that contain ': ' or ' #' "
                "or start with one of * & ! % @ ` [ {")
    return f"{path}:{line}: not valid YAML: {problem}{context} ({hint})"


def read_yaml(path: str | os.PathLike, what: str = "config") -> tuple[Any, dict[KeyPath, int]]:
    """Read one YAML (or JSON) file with :class:`StrictLoader`: its data and the line of each key path.

    InputError naming the file and line of every duplicated key, or of the syntax error.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found (check the path and the name)") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}: save the file as UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{path}: {what} file cannot be read ({exc.strerror})") from None
    loader = StrictLoader(text)
    try:
        return loader.get_single_data(), loader.lines
    except DuplicateKeyError as exc:
        raise InputError("\n".join(
            f"{path}:{line}: key '{dotted(key)}' is given twice (first on line {first}; YAML readers silently keep "
            "only the last one: delete one of them or merge the two)" for key, line, first in exc.duplicates)) from None
    except yaml.YAMLError as exc:
        try:  # Snakemake reads JSON first; JSON that PyYAML cannot parse is still a valid config file
            return json.loads(text, object_pairs_hook=_json_pairs), {}
        except _JsonDuplicate as dup:
            raise InputError(f"{path}: key '{dup.args[0]}' is given twice in one JSON object "
                             "(delete one of them or merge the two)") from None
        except ValueError:
            pass
        raise InputError(_syntax_problem(path, exc, text)) from None
    finally:
        loader.dispose()


def read_config_file(path: str | os.PathLike) -> ConfigSource:
    """Read one config file strictly (:func:`read_yaml`); it must hold a mapping of keys (an empty file is ``{}``)."""
    data, lines = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: holds a {type(data).__name__}, not a mapping of config keys "
                         "(write one 'key: value' per line at the top level, as in config.yaml)")
    return ConfigSource(str(path), data, lines)


def merge_config(layers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge configuration layers in order, later on top: mappings merge key by key, other values replace.

    The rule Snakemake applies to several ``--configfile`` and ``--config`` (``snakemake.utils.update_config``).
    """

    def update(base: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        for key, value in new.items():
            if isinstance(value, Mapping):
                sub = base.get(key)
                base[key] = update(sub if isinstance(sub, dict) else {}, value)
            else:
                base[key] = copy.deepcopy(value)
        return base

    merged: dict[str, Any] = {}
    for layer in layers:
        update(merged, layer)
    return merged


def load_schema() -> dict:
    """Read the config JSON schema (YAML) shipped with the library (:data:`SCHEMA`)."""
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def _defaults_validator(schema: dict):
    """The schema's validator class, extended to fill in each omitted property's default (deep copies).

    The same as ``snakemake.utils.validate(..., set_default=True)``: a default is set where the key is missing,
    then the properties are validated, so the defaults of nested blocks are filled in too. Unlike JSON schema,
    an integer must be written as one (``1000``, not ``1e3`` or ``1000.0``), so integer keys hold ints.
    """
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    set_props = base.VALIDATORS["properties"]

    def properties(validator, props, instance, sub):
        if isinstance(instance, dict):
            for name, prop in props.items():
                if "default" in prop and name not in instance:
                    instance[name] = copy.deepcopy(prop["default"])
        yield from set_props(validator, props, instance, sub)

    # An integer is an int: 1e3 is read as the float 1000.0, which JSON schema would pass as an integer.
    types = base.TYPE_CHECKER.redefine("integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    return jsonschema.validators.extend(base, {"properties": properties}, type_checker=types)


def check_run_name(run: object) -> str:
    """Return ``run`` when it names one plain folder below results/, logs/ and benchmarks/; InputError otherwise.

    Refuses everything that could write elsewhere: '..', '.', paths, separators, hidden names, whitespace.
    """
    if not isinstance(run, str) or _RUN_NAME.fullmatch(run) is None:
        raise InputError(f"run: {run!r} is not a valid run name ({RUN_NAME_RULE})")
    return run


def run_folders(run: str) -> dict[str, str]:
    """The folders a run writes into, ``{"results": "results/<run>", ...}`` (:data:`RUN_ROOTS`), relative to the
    working directory; InputError for a name that is not one plain folder (:func:`check_run_name`)."""
    check_run_name(run)
    return {root: f"{root}/{run}" for root in RUN_ROOTS}


_TYPE_WORDS = {"number": "a number", "integer": "a whole number", "string": "text", "boolean": "true or false",
               "array": "a list", "object": "a mapping of keys", "null": "null"}


def _is_number_text(value: str) -> bool:
    try:
        float(value.replace("_", ""))
    except ValueError:
        return False
    return value.strip().lower().lstrip("+-") not in ("inf", "infinity", "nan")


def _first_sentence(text: str, limit: int = 160) -> str:
    text = re.split(r"\.\s+(?=[A-Z])", " ".join(text.split()), maxsplit=1)[0].rstrip(".")
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _doc_hint(schema: Mapping[str, Any], key: str) -> str:
    """What a key holds, from its schema: the description's first sentence and the default."""
    parts = []
    if schema.get("description"):
        parts.append(_first_sentence(schema["description"]))
    if "default" in schema and not isinstance(schema["default"], dict):
        parts.append(f"default {json.dumps(schema['default'])}")
    return "; ".join(parts) or f"see '{key}' in src/meta_ood/config.schema.yaml"


def _type_hint(expected: list[str], value: Any, schema: Mapping[str, Any], key: str) -> str:
    words = " or ".join(_TYPE_WORDS.get(t, t) for t in expected)
    if value is None:
        default = f", {json.dumps(schema['default'])}" if "default" in schema else ""
        return f"the key has no value: give {words}, or delete the line to take the default{default}"
    if isinstance(value, str) and {"number", "integer"} & set(expected) and _is_number_text(value):
        return f"write the number without quotes, e.g. {key.rsplit('.', 1)[-1]}: {value.strip()}"
    if "string" in expected and isinstance(value, int | float) and not isinstance(value, bool):
        return "put the value in quotes to make it text"
    if expected == ["integer"] and isinstance(value, float) and value.is_integer():
        return f"write a whole number, e.g. {int(value)}"
    return f"give {words}"


def _problems(err: Any) -> list[tuple[KeyPath, str]]:
    """One ``(key path, what is wrong (what to do))`` per problem of one jsonschema error."""
    path: KeyPath = tuple(err.absolute_path)
    key = dotted(path) or "(top level)"
    kind, value, schema = err.validator, err.instance, err.schema
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = list(schema.get("properties", {}))
        out = []
        for name in value:
            if name in allowed or not isinstance(name, str):  # keys that are not text: _non_text_keys
                continue
            close = difflib.get_close_matches(str(name), allowed, n=1)
            guess = f"did you mean '{close[0]}'? " if close else ""
            owner = f"'{key}'" if path else "the top level"
            out.append(((*path, name), f"unknown key ({guess}{owner} takes: {', '.join(allowed)})"))
        return out
    if path == ("run",) and kind != "type":
        return [(path, f"{value!r} is not a valid run name ({RUN_NAME_RULE})")]
    if "propertyNames" in err.schema_path:
        return [(path, f"the name {value!r} is not allowed here (names here become folder names: letters, digits, "
                       "'_', '-' and '.', starting with a letter or digit)")]
    if kind == "type":
        expected = [err.validator_value] if isinstance(err.validator_value, str) else list(err.validator_value)
        return [(path, f"{err.message} ({_type_hint(expected, value, schema, key)})")]
    if kind in ("oneOf", "anyOf") and err.context:
        import jsonschema

        fitting = [c for c in err.context if c.validator != "type"]  # the alternative of the value's own type
        best = jsonschema.exceptions.best_match(fitting or err.context)
        return [(path, f"{best.message} ({_doc_hint(schema, key)})")]
    if kind == "enum":
        return [(path, f"{err.message} (use one of these)")]
    return [(path, f"{err.message} ({_doc_hint(schema, key)})")]


def _non_text_keys(node: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Keys that are not text (YAML reads ``1:`` or ``true:`` as a number or a boolean)."""
    if isinstance(node, dict):
        for name, value in node.items():
            if not isinstance(name, str):
                yield path, f"the key {name!r} is not text (put it in quotes: '{name}')"
            yield from _non_text_keys(value, (*path, name))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _non_text_keys(item, (*path, index))


def _located(path: KeyPath, sources: Sequence[ConfigSource]) -> str:
    """``file:line: `` (or ``file: ``) of the last layer that sets ``path``; '' when no layer does."""
    for source in reversed(sources):
        node: Any = source.data
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                break
        else:
            line = source.lines.get(path)
            return f"{source.name}:{line}: " if line else f"{source.name}: "
    return ""


def validate_config(config: dict[str, Any], schema: dict | None = None,
                    sources: Sequence[ConfigSource] = ()) -> dict[str, Any]:
    """Return a copy of ``config`` with the schema's defaults filled in; InputError listing every problem otherwise.

    One line per problem, ``[file:line: ]key.path: what is wrong (what to do)``; ``sources`` (the layers ``config``
    was merged from) name the file and line that set each bad key.
    """
    schema = schema or load_schema()
    if not isinstance(config, dict):
        raise InputError(f"the configuration is a {type(config).__name__}, not a mapping of keys "
                         "(write one 'key: value' per line at the top level, as in config.yaml)")
    cfg = copy.deepcopy(config)
    validator = _defaults_validator(schema)(schema)
    problems = list(_non_text_keys(cfg))
    errors = sorted(validator.iter_errors(cfg), key=lambda e: tuple(str(p) for p in e.absolute_path))
    for err in errors:
        problems.extend(p for p in _problems(err) if p not in problems)
    if not any(path == ("run",) for path, _ in problems):
        try:
            check_run_name(cfg.get("run"))
        except InputError:
            problems.append((("run",), f"{cfg.get('run')!r} is not a valid run name ({RUN_NAME_RULE})"))
    if problems:
        raise InputError("\n".join(f"{_located(path, sources)}{dotted(path) or '(top level)'}: {text}"
                                   for path, text in problems))
    return cfg


def _typed(value: Any) -> Any:
    """``--config`` values as the config files would read them: Snakemake keeps ``true``, ``null`` and ``1e-3``
    (of nested values, any scalar) as text; strings that YAML reads as a boolean, null or number become one."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = yaml.load(value, Loader=StrictLoader)
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, (bool, int, float)):
            return parsed
    return value


def resolve_config(files: Sequence[str | os.PathLike], overrides: Mapping[str, Any] | None = None,
                   schema: dict | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``files`` strictly, merge them in order with ``overrides`` (``--config``) on top, and validate.

    Returns ``(as written, with the schema's defaults)``; InputError listing the problems of every file, or of the
    merged configuration, one per line.
    """
    sources, problems = [], []
    for path in files:
        try:
            sources.append(read_config_file(path))
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError("\n".join(problems))
    if overrides:
        sources.append(ConfigSource("--config", _typed(dict(overrides))))
    raw = merge_config(source.data for source in sources)
    return raw, validate_config(raw, schema, sources)


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Load one config file strictly and validate it (the schema's defaults filled in)."""
    return resolve_config([path])[1]


def write_config(config: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the resolved configuration of a run (defaults filled) as YAML, for provenance."""
    from meta_ood.io import write_text_atomic  # numpy and PIL: not needed to read and check configs

    text = "# The configuration this run used, with the schema's defaults filled in.\n"
    write_text_atomic(path, text + yaml.safe_dump(copy.deepcopy(config), sort_keys=False))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m meta_ood.config FILE [FILE ...]``: check config files (merged in order) as the workflow does.

    Prints one line per problem and returns 1, or a confirmation and 0; usable where Snakemake fails on a file
    before the workflow runs (a YAML syntax error: Snakemake names neither file nor line).
    """
    files = list(sys.argv[1:] if argv is None else argv)
    if not files or files[0] in ("-h", "--help"):
        print("usage: python -m meta_ood.config FILE [FILE ...]\n"
              "Check config files (merged in order, as several --configfile) against the schema.")
        return 0 if files else 2
    try:
        _, resolved = resolve_config(files)
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{', '.join(files)}: valid (run '{resolved['run']}', models {', '.join(resolved['models'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
