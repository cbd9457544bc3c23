"""Value checks of the settings model in :mod:`pipeline_platform.config` (one per kind of value).

Each check raises ``ValueError`` with the reason only; the settings model adds the variable's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, SecretStr

_TRUE = frozenset({"1", "true", "yes", "on", "running"})
_FALSE = frozenset({"0", "false", "no", "off", "stopped"})


def flag(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected one of {', '.join(sorted(_TRUE | _FALSE))}")
    return value


def comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(origin.strip() for origin in value.split(",") if origin.strip())
    return value


def database_url(value: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError("not a database URL (expected dialect+driver://...)") from None
    return value


def brokers(value: str) -> str:
    for entry in value.split(","):
        host, colon, port = entry.strip().rpartition(":")
        if not entry.strip() or any(c.isspace() for c in entry.strip()):
            raise ValueError("expected host:port[,host:port...]")
        if colon and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"bad broker address {entry.strip()!r} (expected host:port)")
    return value


def directory(value: Path) -> Path:
    if value.exists() and not value.is_dir():
        raise ValueError("exists and is not a directory")
    return value


def file(value: Path) -> Path:
    if value.is_dir():
        raise ValueError("is a directory, not a registry file")
    return value


def host(value: str) -> str:
    if "/" in value or any(c.isspace() for c in value):
        raise ValueError("expected a host name or address, not a URL")
    return value


def word(value: str) -> str:
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    return value


def token(value: SecretStr) -> SecretStr:
    word(value.get_secret_value())  # it travels in an Authorization header
    return value


def cors_origins(value: tuple[str, ...]) -> tuple[str, ...]:
    for origin in value:
        scheme, sep, host = origin.partition("://")
        if origin != "*" and not (scheme in ("http", "https") and sep and host and "/" not in host):
            raise ValueError(f"bad origin {origin!r} (expected * or http(s)://host[:port])")
    return value


def http_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if scheme not in ("http", "https") or not sep or not rest:
        raise ValueError("expected an http:// or https:// URL")
    return value


def secret_http_url(value: SecretStr) -> SecretStr:
    http_url(value.get_secret_value())
    return value


def smtp_url(value: SecretStr) -> SecretStr:
    scheme, sep, rest = value.get_secret_value().partition("://")
    if scheme not in ("smtp", "smtps") or not sep or not rest:
        raise ValueError("expected smtp://user:password@host:port or smtps://...")
    return value


def email_address(value: str) -> str:
    local, at, domain = value.partition("@")
    if not (local and at and domain) or any(c.isspace() or c in ",<>" for c in value):
        raise ValueError(f"bad e-mail address {value!r} (expected name@host)")
    return value


def email_addresses(value: tuple[str, ...]) -> tuple[str, ...]:
    for address in value:
        email_address(address)
    return value


Flag = Annotated[bool, BeforeValidator(flag)]
DatabaseUrl = Annotated[str, AfterValidator(database_url)]
