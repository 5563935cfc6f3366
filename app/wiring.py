"""Wiring a configured directory into a running service: CA, stores, engines, HTTP transport.

One engine per profile (their options differ), all sharing the SQLite store, the CA and the
server's credentials. Expired transactions are swept opportunistically as requests arrive, so no
background thread is needed and any number of worker processes can share the database.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto.x509 import GeneralName, Name
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sanscmp.ca.authority import CaKey, CertificateAuthority
from sanscmp.ca.service import CaService
from sanscmp.ca.store import SqliteStore
from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.authentication import ProtectionPolicy
from sanscmp.engine.checks import HeaderPolicy
from sanscmp.engine.protection import SignatureCredential
from sanscmp.engine.serve import serve
from sanscmp.engine.server import ServerConfig, ServerEngine, ServerOptions
from sanscmp.engine.trust import TrustConfig
from sanscmp.transport.http import CmpHttpApp, HttpConfig
from sanscmp.transport.service import CmpService, EngineService

from .config import DEFAULT_PROFILE, Settings

SWEEP_INTERVAL = 5.0  # seconds between sweeps of expired transactions, per worker


class SystemClock:
    """The wall clock, for the engine (which never reads it itself)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class Secrets:
    """PBM secrets by reference (senderKID), from the configuration."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._secrets = {k.encode(): v.encode() for k, v in secrets.items()}

    def secret_for(self, sender_kid: bytes | None) -> bytes | None:
        return self._secrets.get(sender_kid) if sender_kid is not None else None


@dataclass
class ProfileEndpoint:
    """One profile's engine and CA decisions, as a transport-facing front end."""

    engine: ServerEngine
    ca: CaService
    store: SqliteStore
    _last_sweep: float = field(default=0.0)

    def process(self, request: bytes) -> PKIMessage:
        """Sweep expired transactions now and then, then serve the request; each commits its
        writes (nonce, certificates, transaction) at once."""
        if time.monotonic() - self._last_sweep > SWEEP_INTERVAL:
            self._last_sweep = time.monotonic()
            with self.store.unit_of_work():
                for ended in self.engine.expire():
                    self.ca.expired(ended)
        with self.store.unit_of_work():
            return serve(self.engine, request, self.ca.decide)


def load_authority(settings: Settings) -> CertificateAuthority:
    """The CA key and certificate named in the configuration."""
    key = serialization.load_pem_private_key(settings.ca_key.read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate(settings.ca_certificate.read_bytes())
    if not isinstance(key, CaKey):
        raise ValueError(f"{settings.ca_key}: unsupported CA key type")
    return CertificateAuthority(key, certificate)


def build_endpoints(settings: Settings, store: SqliteStore) -> dict[str, ProfileEndpoint]:
    """An endpoint per profile label ("" is the default profile at /.well-known/cmp)."""
    authority = load_authority(settings)
    server_key = serialization.load_pem_private_key(settings.cmp_key.read_bytes(), password=None)
    server_cert = x509.load_pem_x509_certificate(settings.cmp_certificate.read_bytes())
    credential = SignatureCredential(server_key, server_cert, (authority.certificate,))  # type: ignore[arg-type]
    name = GeneralName(name="directory_name", value=Name.load(server_cert.subject.public_bytes()))
    clock = SystemClock()
    endpoints: dict[str, ProfileEndpoint] = {}
    for label, profile in settings.profiles.items():
        client_cas = tuple(
            x509.load_pem_x509_certificate((settings.directory / path).read_bytes())
            for path in profile.client_ca_files
        )
        anchors = ((authority.certificate,) if profile.trust_issued else ()) + client_cas
        policy = ProtectionPolicy(
            random=os.urandom,
            mac_secrets=Secrets(settings.pbm_secrets),
            trust=TrustConfig(anchors=anchors) if anchors else None,
            credential=credential,
        )
        options = ServerOptions(
            send_unprotected_errors=settings.send_unprotected_errors,
            accept_raverified=settings.accept_raverified,
            grant_implicit_confirm=profile.implicit_confirm,
            transaction_timeout=settings.transaction_timeout,
            header=HeaderPolicy(max_time_skew=settings.max_time_skew),
        )
        engine = ServerEngine(
            ServerConfig(
                name=name,
                clock=clock,
                random=os.urandom,
                authenticator=policy,
                options=options,
                transactions=store,
                nonces=store,
            )
        )
        endpoint = ProfileEndpoint(engine, CaService(authority, profile, store, clock.now), store)
        endpoints[label] = endpoint
        if label == DEFAULT_PROFILE:
            endpoints[""] = endpoint
    return endpoints


def build_app(settings: Settings) -> CmpHttpApp:
    """The ASGI application serving every profile of `settings`."""
    store = SqliteStore(settings.database, synchronous=settings.synchronous)
    endpoints = build_endpoints(settings, store)
    services: dict[str, CmpService] = {
        label: EngineService(endpoint.process) for label, endpoint in endpoints.items()
    }
    return CmpHttpApp(
        HttpConfig(
            services=services,
            legacy_paths=settings.legacy_paths,
            max_request_bytes=settings.max_request_bytes,
        )
    )


DIRECTORY_VARIABLE = "SANSCMP_DIR"


def app_from_environment() -> CmpHttpApp:
    """ASGI factory for uvicorn workers: the directory comes from $SANSCMP_DIR."""
    from pathlib import Path

    from .config import load_settings

    return build_app(load_settings(Path(os.environ[DIRECTORY_VARIABLE])))
