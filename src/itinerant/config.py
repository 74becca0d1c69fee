"""Run files: TOML read and validated against a declared schema, with messages that name the key.

A schema is a dict mapping a key to an :class:`Option` (a value) or to another dict (a TOML table).
:func:`validate` checks a parsed run file against it before any work starts: unknown keys (with the
closest known name), wrong types, missing required values, values outside their allowed set or
range.  Every message names the full dotted key, e.g. ``[dynamics] dt``.

    SCHEMA = {"lattice": {"kind": Option(str, choices=("square", "triangular")),
                          "L": Option(int, check=positive)},
              "steps": Option(int, default=100)}
    cfg = load_run_file("run.toml", SCHEMA)
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REQUIRED = object()


class ConfigError(ValueError):
    """A run file that cannot be used; the message names the offending key."""


@dataclass(frozen=True)
class Option:
    """One value of a run file.

    ``type`` is a Python type or tuple of types (``float`` also accepts ``int``); ``list`` options may
    give ``item`` for the element type.  ``check(value)`` returns an error text or ``None``.
    """

    type: Any
    default: Any = REQUIRED
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None
    item: Any = None
    help: str = ""


@dataclass(frozen=True)
class ListOf:
    """A TOML array of tables (``[[protocol]]``), each validated against ``schema``.

    ``tag`` names a key whose value selects ``variants[tag_value]`` as the schema for that entry.
    """

    schema: dict | None = None
    tag: str | None = None
    variants: dict | None = None
    default: Any = REQUIRED


def positive(v) -> str | None:
    return None if v > 0 else f"must be > 0, got {v}"


def non_negative(v) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v}"


def _type_ok(value, typ) -> bool:
    types = typ if isinstance(typ, tuple) else (typ,)
    for t in types:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if t is int and isinstance(value, bool):
            continue
        if isinstance(value, t):
            return True
    return False


def _type_name(typ) -> str:
    types = typ if isinstance(typ, tuple) else (typ,)
    return " or ".join(getattr(t, "__name__", str(t)) for t in types)


def _where(path: list[str]) -> str:
    if not path:
        return "run file"
    *tables, key = path
    return f"[{'.'.join(tables)}] {key}" if tables else key


def validate(data: dict, schema: dict, path: list[str] | None = None) -> dict:
    """Check ``data`` against ``schema``; return a new dict with defaults filled in."""
    path = path or []
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(path)}: expected a table, got {type(data).__name__}")
    for key in data:
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {sorted(schema)}"
            raise ConfigError(f"{_where(path + [key])}: unknown key{hint}")
    out = {}
    for key, spec in schema.items():
        here = path + [key]
        if isinstance(spec, dict):
            out[key] = validate(data.get(key, {}), spec, here)
        elif isinstance(spec, ListOf):
            out[key] = _validate_list(data, key, spec, here)
        elif key not in data:
            if spec.default is REQUIRED:
                raise ConfigError(f"{_where(here)}: missing required value ({_type_name(spec.type)})"
                                  + (f": {spec.help}" if spec.help else ""))
            out[key] = spec.default
        else:
            out[key] = _validate_value(data[key], spec, here)
    return out


def _validate_value(value, spec: Option, here: list[str]):
    if not _type_ok(value, spec.type):
        raise ConfigError(f"{_where(here)}: expected {_type_name(spec.type)}, "
                          f"got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_where(here)}: must be finite, got {value}")
    if spec.item is not None and isinstance(value, list):
        for k, v in enumerate(value):
            if not _type_ok(v, spec.item):
                raise ConfigError(f"{_where(here)}[{k}]: expected {_type_name(spec.item)}, "
                                  f"got {type(v).__name__} {v!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{_where(here)}: {value!r} is not one of {list(spec.choices)}")
    if spec.check is not None:
        msg = spec.check(value)
        if msg:
            raise ConfigError(f"{_where(here)}: {msg}")
    return float(value) if spec.type is float else value


def _validate_list(data: dict, key: str, spec: ListOf, here: list[str]) -> list:
    if key not in data:
        if spec.default is REQUIRED:
            raise ConfigError(f"{_where(here)}: missing required list of tables")
        return list(spec.default)
    items = data[key]
    if not isinstance(items, list):
        raise ConfigError(f"{_where(here)}: expected a list of tables ([[{key}]])")
    out = []
    for k, item in enumerate(items):
        at = here[:-1] + [f"{here[-1]}[{k}]"]
        schema = spec.schema
        if spec.tag is not None:
            if not isinstance(item, dict) or spec.tag not in item:
                raise ConfigError(f"{_where(at + [spec.tag])}: missing required value")
            tag = item[spec.tag]
            if tag not in spec.variants:
                raise ConfigError(f"{_where(at + [spec.tag])}: unknown {spec.tag} {tag!r}; "
                                  f"known: {sorted(spec.variants)}")
            schema = {spec.tag: Option(str), **spec.variants[tag]}
        out.append(validate(item, schema, at))
    return out


def load_run_file(path: str | Path, schema: dict) -> dict:
    """Read a TOML run file and validate it; ``ConfigError`` names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"run file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return validate(data, schema)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _lattice_kind(v) -> str | None:
    return None if v in ("square", "triangular") else f"unknown lattice {v!r}; known: square, triangular"


MODEL_SCHEMA = {
    "lattice": Option(str, check=_lattice_kind, help="square or triangular"),
    "L": Option(int, check=positive, help="linear lattice size"),
    "t": Option(list, default=[1.0], item=float, help="hoppings (t1, t2, ...)"),
    "J": Option(float, help="s-d coupling"),
    "filling": Option(float, default=None),
    "mu": Option(float, default=None),
    "kT": Option(float, default=0.0, check=non_negative),
}
"""The ``[model]`` table shared by every run file: it builds an :class:`~itinerant.SDModel`."""


def model_from_config(cfg: dict, where: str = "[model]"):
    """Build the :class:`~itinerant.SDModel` of a validated ``[model]`` table."""
    from .lattice import Lattice
    from .model import SDModel

    try:
        lat = Lattice.from_name(cfg["lattice"], cfg["L"])
        return SDModel(lat, t=tuple(cfg["t"]), J=cfg["J"], filling=cfg["filling"], mu=cfg["mu"],
                       kT=cfg["kT"])
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
