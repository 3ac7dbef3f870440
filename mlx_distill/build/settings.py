"""Settings described once, on the typed stage configs: default, help text and flag per field.

Why: ``cli.py`` used to restate every default of the stage dataclasses, so ``--warmup 0.1`` silently
overrode ``DistillConfig``'s 0.06 and a changed default had to be edited in two or three places.
Now a field carries its help text (and, where it differs from ``--field-name``, its flag) in
``dataclasses.field(metadata=...)``, in the style of mlx-lm's ``TrainingArgs``, and the command-line
flags, the TOML schema of ``build`` and the README's config reference are all generated from it.

Pure standard library: no mlx, no torch (the configs of both sides are read through it).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


def setting(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None,
            choices: tuple | None = None, default_factory: Callable[[], Any] | None = None,
            parse: Callable[[str], Any] | None = None, cli: bool = True) -> Any:
    """A dataclass field with the metadata flags and the TOML schema are made from.

    ``flag`` overrides ``--field-name`` (kept so users' commands keep working: ``--lr``);
    ``parse`` turns the text of a flag or a TOML string into the value (``--layer-map 1:2,2:4``);
    ``cli=False`` keeps a field out of the command line (it stays settable in a build file).
    """
    meta = {"help": help, "flag": flag, "choices": choices, "parse": parse, "cli": cli}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Setting:
    """One field of a config, as flags and the TOML schema see it."""

    name: str
    kind: Any  # the resolved annotation
    default: Any  # dataclasses.MISSING when required
    help: str
    flag: str
    choices: tuple | None
    parse: Callable[[str], Any] | None
    cli: bool

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    @property
    def nested(self) -> type | None:
        """The dataclass of a nested config section (``DistillConfig.train``), else None."""
        base = _strip_optional(self.kind)
        return base if dataclasses.is_dataclass(base) else None

    def type_name(self) -> str:
        """How the README and error messages name the expected type."""
        base = _strip_optional(self.kind)
        if self.choices or typing.get_origin(base) is typing.Literal:
            return " | ".join(repr(c) for c in self.options())
        if self.parse is not None:
            return "string"
        names = {int: "integer", float: "number", bool: "true/false", str: "string", Path: "path"}
        if base in names:
            return names[base]
        origin = typing.get_origin(base) or base
        if origin in (list, tuple):
            return "list"
        if self.nested is not None:
            return "table"
        return getattr(base, "__name__", str(base))

    def options(self) -> tuple:
        if self.choices:
            return tuple(self.choices)
        base = _strip_optional(self.kind)
        return typing.get_args(base) if typing.get_origin(base) is typing.Literal else ()


def _strip_optional(kind: Any) -> Any:
    """``Path | None`` -> ``Path``; ``Optional[int]`` -> ``int``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def settings_of(cls: type, flags: dict[str, str] | None = None) -> list[Setting]:
    """Every field of ``cls``; ``flags`` (field -> flag) serves configs whose metadata spells the
    flag differently (``ExportConfig``'s ``{"flag": ...}`` is read the same way)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        flag = (flags or {}).get(f.name) or meta.get("flag") or "--" + f.name.replace("_", "-")
        out.append(Setting(f.name, hints[f.name], default, meta.get("help", ""), flag, meta.get("choices"),
                           meta.get("parse"), meta.get("cli", True)))
    return out


def flag_of(cls: type, name: str) -> str:
    """The flag of field ``name``: what a user typed, for error messages."""
    for s in settings_of(cls):
        if s.name == name:
            return s.flag
    return "--" + name.replace("_", "-")


# ---- command-line flags ----------------------------------------------------------------------------
def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, defaults: Any,
              skip: tuple[str, ...] = (), helps: dict[str, str] | None = None, dest_prefix: str = "") -> None:
    """One flag per field of ``cls`` (nested configs and ``cli=False`` fields left out); each value
    lands in ``args.<dest_prefix><field>`` (``build`` keeps ``--processes`` apart from the commands
    that relaunch themselves).

    Every flag's argparse default is ``None`` — "not given" — and the value shown in the help is the
    field's value in ``defaults``, the stage's own default instance: ``DistillConfig().train`` says
    warm-up 0.06 while a plain ``TrainConfig`` says 0.1, and the flag must not pick one for both.
    """
    for s in settings_of(cls):
        if s.name in skip or not s.cli or s.nested is not None:
            continue
        shown = getattr(defaults, s.name, None) if defaults is not None else None
        text = s.help or (helps or {}).get(s.name, "")
        base = _strip_optional(s.kind)
        kwargs: dict[str, Any] = {"dest": dest_prefix + s.name, "default": None}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            text += f" (default: {'on' if shown else 'off'})"
        else:
            if s.options():
                kwargs["choices"] = list(s.options())
            kwargs["type"] = s.parse or (base if base in (int, float, str, Path) else str)
            kwargs["metavar"] = {int: "N", float: "X", Path: "PATH"}.get(base, "TEXT") if not s.options() else None
            if shown not in (None, "", dataclasses.MISSING):
                text += f" (default: {_show(shown)})"
        parser.add_argument(s.flag, help=text.replace("%", "%%"), **kwargs)


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def given_values(args: argparse.Namespace, cls: type, dest_prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` the user gave on the command line (flags left at ``None`` are absent)."""
    out = {}
    for s in settings_of(cls):
        if s.nested is not None or not s.cli:
            continue  # a nested config has no flag of its own (``--train`` is the data file)
        value = getattr(args, dest_prefix + s.name, None)
        if value is not None:
            out[s.name] = value
    return out


# ---- TOML tables -----------------------------------------------------------------------------------
class SettingError(ValueError):
    """A value of the wrong type or an unknown key; ``path`` is the key path inside the file."""

    def __init__(self, path: tuple[str, ...], problem: str):
        super().__init__(problem)
        self.path, self.problem = path, problem


def check_value(s: Setting, value: Any, path: tuple[str, ...]) -> Any:
    """A TOML value converted to the field's type, or :class:`SettingError` saying what was expected."""
    base = _strip_optional(s.kind)

    def wrong() -> SettingError:
        return SettingError(path, f"expected {s.type_name()}, got {_toml_type(value)} {value!r}")

    if s.parse is not None and isinstance(value, str):
        try:
            return s.parse(value)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise SettingError(path, str(exc)) from None
    if s.options():
        if value not in s.options():
            raise wrong()
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong()
        return float(value)
    if base in (str, Path):
        if not isinstance(value, str):
            raise wrong()
        return value
    origin = typing.get_origin(base) or base
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise wrong()
        items = typing.get_args(base)
        if origin is tuple and items and len(items) != len(value) and items[-1] is not Ellipsis:
            raise SettingError(path, f"expected a list of {len(items)} values, got {len(value)}")
        return tuple(value) if origin is tuple else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        return value
    return value


def _toml_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def values_from_table(table: dict[str, Any], classes: list[type], path: tuple[str, ...],
                      skip: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    """Split one TOML table over the configs that share it.

    Returns (the checked values for each class in ``classes``, the nested tables by field name).
    A key no class knows is a :class:`SettingError` listing the keys that are known.
    """
    known: dict[str, tuple[int, Setting]] = {}
    for i, cls in enumerate(classes):
        for s in settings_of(cls):
            if s.name not in skip:
                known.setdefault(s.name, (i, s))
    values: list[dict[str, Any]] = [{} for _ in classes]
    nested: dict[str, dict] = {}
    for key, value in table.items():
        if key not in known:
            raise SettingError((*path, key), f"unknown key; known keys here: {', '.join(sorted(known))}")
        i, s = known[key]
        if s.nested is not None:
            if not isinstance(value, dict):
                raise SettingError((*path, key), f"expected a table [{'.'.join((*path, key))}], got {_toml_type(value)}")
            nested[key] = value
            continue
        values[i][key] = check_value(s, value, (*path, key))
    return values, nested


def reference_rows(cls: type, defaults: Any, skip: tuple[str, ...] = (),
                   helps: dict[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for each field: the README's config reference is made of these."""
    rows = []
    for s in settings_of(cls):
        if s.name in skip or s.nested is not None:
            continue
        value = getattr(defaults, s.name, s.default) if defaults is not None else s.default
        shown = "required" if value is dataclasses.MISSING else "" if value in (None, "", []) else _show(value)
        if isinstance(value, bool):
            shown = str(value).lower()
        rows.append((s.name, s.type_name(), shown, s.help or (helps or {}).get(s.name, "")))
    return rows
