"""The TOML configuration of a sanscmp directory (`sanscmp.toml`), read into typed settings.

Paths in the file are relative to its directory. Scripts and tools depend on these names; they are
documented in the README and must stay stable.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sanscmp.ca.profile import Profile, profile_from_table

CONFIG_NAME = "sanscmp.toml"
DEFAULT_PROFILE = "default"  # served at /.well-known/cmp as well as /.well-known/cmp/p/default


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class Settings:
    """Everything `sanscmp serve` and the operator commands need."""

    directory: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    legacy_paths: tuple[str, ...] = ("/pkix/",)
    max_request_bytes: int = 256 * 1024
    database: Path = Path("sanscmp.db")
    synchronous: str = "FULL"  # SQLite: FULL survives a power cut, NORMAL only a crash (faster)
    ca_key: Path = Path("ca-key.pem")
    ca_certificate: Path = Path("ca.pem")
    cmp_key: Path = Path("server-key.pem")
    cmp_certificate: Path = Path("server.pem")
    transaction_timeout: timedelta = timedelta(minutes=10)
    max_time_skew: timedelta = timedelta(minutes=10)
    send_unprotected_errors: bool = False
    accept_raverified: bool = False
    pbm_secrets: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)


def load_settings(directory: Path) -> Settings:
    """Read `directory/sanscmp.toml`; `ConfigError` with a clear text if it is not usable."""
    path = directory / CONFIG_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run `sanscmp init {directory}` first") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return _settings(directory.resolve(), data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _settings(directory: Path, data: dict[str, Any]) -> Settings:
    server = data.get("server", {})
    ca = data.get("ca", {})
    cmp = data.get("cmp", {})
    profiles = {
        label: profile_from_table(label, table)
        for label, table in data.get("profiles", {DEFAULT_PROFILE: {}}).items()
    }
    if DEFAULT_PROFILE not in profiles:
        raise ValueError(f"[profiles.{DEFAULT_PROFILE}] is required")
    storage = data.get("storage", {})
    synchronous = str(storage.get("synchronous", "FULL")).upper()
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError('[storage] synchronous must be "FULL" or "NORMAL"')
    secrets = data.get("pbm", {}).get("secrets", {})
    if not all(isinstance(v, str) and v for v in secrets.values()):
        raise ValueError("[pbm.secrets] values must be non-empty strings")
    return Settings(
        directory=directory,
        host=str(server.get("host", "127.0.0.1")),
        port=int(server.get("port", 8080)),
        workers=int(server.get("workers", 1)),
        legacy_paths=tuple(server.get("legacy_paths", ["/pkix/"])),
        max_request_bytes=int(server.get("max_request_bytes", 256 * 1024)),
        database=directory / storage.get("database", "sanscmp.db"),
        synchronous=synchronous,
        ca_key=directory / ca.get("key", "ca-key.pem"),
        ca_certificate=directory / ca.get("certificate", "ca.pem"),
        cmp_key=directory / cmp.get("key", "server-key.pem"),
        cmp_certificate=directory / cmp.get("certificate", "server.pem"),
        transaction_timeout=timedelta(seconds=int(cmp.get("transaction_timeout_seconds", 600))),
        max_time_skew=timedelta(seconds=int(cmp.get("max_time_skew_seconds", 600))),
        send_unprotected_errors=bool(cmp.get("send_unprotected_errors", False)),
        accept_raverified=bool(cmp.get("accept_raverified", False)),
        pbm_secrets=dict(secrets),
        profiles=profiles,
    )
