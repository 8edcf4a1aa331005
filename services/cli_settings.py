"""The settings on the command line: flags generated from the fields, validation, sources, warnings.

One source of truth: each pydantic-settings field gives its flag (``--`` + the field name), its
environment variables (the alias; of several, the first set wins), its default and its meaning
(the field's docstring). A flag given on the command line is put into the process environment
under the field's first variable before the settings are read, so it wins over the environment
and is parsed exactly as the variable would be. Secrets get no flag: they come from the
environment or a ``*_FILE`` only, never from a command line that ``ps`` shows.
"""

import argparse
import difflib
import os
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from services.config import SettingsError

OWNED_PREFIXES = (
    "NATS_",
    "CONSUL_",
    "RELAY_",
    "API_",
    "ENRICHER_",
    "SITE",
    "LOG_",
    "NODEVIEW_",
    "RESYNC_",
    "SHUTDOWN_",
)
"""Prefixes of environment variables that belong to nodeview (``OTEL_*`` is the SDK's)."""

CONSUL_TOOL_VARIABLES = frozenset(
    {
        "CONSUL_HTTP_AUTH",
        "CONSUL_CAPATH",
        "CONSUL_GRPC_ADDR",
        "CONSUL_GRPC_CACERT",
        "CONSUL_GRPC_CAPATH",
        "CONSUL_LICENSE",
        "CONSUL_LICENSE_PATH",
        "CONSUL_HTTP_PROFILE",
        "CONSUL_PEER",
    }
)
"""Consul's own variables that nodeview does not read: set for the ``consul`` CLI, no typo."""

NEAR_MISS_CUTOFF = 0.8
"""Similarity (difflib's ratio) from which an unknown variable is taken for a known one."""

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
"""``user:password@`` in a URL."""

HELP_DEFAULT = "help_default"
"""Key of a field's ``json_schema_extra`` that says its default in words (a computed one)."""

_KINDS: dict[Any, str] = {int: "INT", float: "NUMBER", Path: "FILE", str: "TEXT"}


@dataclass(frozen=True)
class Setting:
    """One field of a settings class as the command line shows it."""

    field: str
    env: tuple[str, ...]
    """Its environment variables; when several are set, the first wins."""
    flag: str | None
    """``--field-name``; None for a secret (environment or file only)."""
    default: str
    meaning: str
    secret: bool
    boolean: bool
    metavar: str

    @property
    def dest(self) -> str:
        """Attribute of the parsed arguments that holds this setting's flag."""
        return "setting_" + self.field


def _env_names(info: FieldInfo, field: str) -> tuple[str, ...]:
    alias = info.validation_alias
    if isinstance(alias, str):
        return (alias,)
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (field.upper(),)


def _plain(annotation: Any) -> Any:
    """The type of a field without ``| None``."""
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return args[0] if len(args) == 1 and type(None) in annotation.__args__ else annotation


def shown(value: Any) -> str:
    """Render a value for people: secrets hidden, ``user:password@`` dropped from URLs."""
    if isinstance(value, SecretStr):
        return "(set, hidden)"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(shown(v) for v in value) or "none"
    return _USERINFO.sub("***@", str(value))


def _default(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get(HELP_DEFAULT), str):
        return str(extra[HELP_DEFAULT])
    if info.default_factory is not None:
        return shown(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "required"
    return shown(info.default)


def settings_of(cls: type[BaseSettings]) -> list[Setting]:
    """Describe every field of a settings class, in declaration order."""
    described = []
    for field, info in cls.model_fields.items():
        kind = _plain(info.annotation)
        secret = kind is SecretStr
        boolean = kind is bool
        described.append(
            Setting(
                field=field,
                env=_env_names(info, field),
                flag=None if secret else "--" + field.replace("_", "-"),
                default=_default(info),
                meaning=" ".join((info.description or "").replace("``", "").split()),
                secret=secret,
                boolean=boolean,
                metavar=_KINDS.get(kind, "LIST"),
            )
        )
    return described


def add_setting_flags(parser: argparse.ArgumentParser, cls: type[BaseSettings]) -> None:
    """Give a command one flag per setting of ``cls``, and list its secrets (no flags)."""
    flags = parser.add_argument_group(
        "settings",
        "Each flag has an environment variable; the flag wins when both are set.",
    )
    secrets = []
    for setting in settings_of(cls):
        where = " or ".join(setting.env)
        if setting.flag is None:
            secrets.append(f"  {where:<32} {setting.meaning}".rstrip())
            continue
        text = f"{setting.meaning} [env {where}; default {setting.default}]"
        text = text.replace("%", "%%")
        if setting.boolean:
            flags.add_argument(
                setting.flag,
                dest=setting.dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=text,
            )
        else:
            flags.add_argument(
                setting.flag, dest=setting.dest, metavar=setting.metavar, default=None, help=text
            )
    if secrets:
        parser.add_argument_group(
            "secrets (from the environment only, never a flag; see the *_FILE settings)",
            "\n".join(secrets),
        )


def flag_values(args: argparse.Namespace, cls: type[BaseSettings]) -> dict[str, str]:
    """Return the settings given as flags, as the environment variables they stand for."""
    values = {}
    for setting in settings_of(cls):
        value = getattr(args, setting.dest, None)
        if value is None:
            continue
        values[setting.env[0]] = ("true" if value else "false") if setting.boolean else str(value)
    return values


def _problem(
    error: Mapping[str, Any],
    cls: type[BaseSettings],
    environ: Mapping[str, str],
    flags: Mapping[str, str],
) -> str:
    """One line naming the variable (or flag) and what is wrong with it (never a secret)."""
    by_env = {name: s for s in settings_of(cls) for name in s.env}
    loc = error.get("loc") or ()
    setting = by_env.get(str(loc[0])) if loc else None
    if error.get("type") == "value_error" and "error" in (error.get("ctx") or {}):
        message = str(error["ctx"]["error"])
    else:
        message = str(error.get("msg", "invalid"))
        message = message[:1].lower() + message[1:]
        if setting is not None and not setting.secret and isinstance(error.get("input"), str):
            message += f" (got {error['input']!r})"
    if setting is None:
        return _USERINFO.sub("***@", message)
    name = next((n for n in setting.env if n in environ), setting.env[0])
    if name in flags:
        name = f"{setting.flag} ({name})"
    return _USERINFO.sub("***@", f"{name}: {message}")


def load(
    cls: type[BaseSettings], flags: Mapping[str, str] | None = None
) -> tuple[BaseSettings | None, list[str]]:
    """Read and check a role's settings: the settings, or the problems (one line each).

    ``flags`` are the variables the command line set (see ``apply_flags``): problems with them
    name the flag.
    """
    flags = flags or {}
    try:
        settings = cls()
        check = getattr(settings, "check_files", None)
        if check is not None:
            check()
    except ValidationError as exc:
        return None, [_problem(error, cls, os.environ, flags) for error in exc.errors()]
    except SettingsError as exc:
        return None, [_USERINFO.sub("***@", str(exc))]
    return settings, []


def known_variables(classes: Iterable[type[BaseSettings]]) -> set[str]:
    """Every environment variable the given settings classes read."""
    return {name for cls in classes for s in settings_of(cls) for name in s.env}


def near_misses(environ: Mapping[str, str], known: set[str]) -> list[str]:
    """Warn of set variables of nodeview's prefixes that nodeview does not read but nearly names."""
    warnings = []
    for name in sorted(environ):
        if name in known or name in CONSUL_TOOL_VARIABLES or not name.startswith(OWNED_PREFIXES):
            continue
        match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=NEAR_MISS_CUTOFF)
        if match:
            warnings.append(f"warning: {name} is not a nodeview setting; did you mean {match[0]}?")
    return warnings


def apply_flags(values: Mapping[str, str], environ: MutableMapping[str, str]) -> None:
    """Put flag values into the environment, where they win over what it held."""
    environ.update(values)


def describe(
    settings: BaseSettings, flags: Mapping[str, str], environ: Mapping[str, str]
) -> list[str]:
    """The effective configuration, one line per setting: variable, value, where it came from."""
    rows = []
    for setting in settings_of(type(settings)):
        if setting.env[0] in flags:
            source = f"flag {setting.flag}"
        else:
            source = next((f"env {n}" for n in setting.env if n in environ), "default")
        value = getattr(settings, setting.field)
        rows.append((setting.env[0], shown(value), source))
    width = max(len(name) for name, _, _ in rows)
    value_width = min(max(len(value) for _, value, _ in rows), 48)
    return [f"  {name:<{width}}  {value:<{value_width}}  {source}" for name, value, source in rows]


def render_problems(command: str, problems: Sequence[str]) -> str:
    """The lines printed for a configuration that cannot be used."""
    return "".join(f"nodeview {command}: {problem}\n" for problem in problems)
