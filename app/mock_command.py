"""The `sanscmp mock` command: `openssl cmp -port ...`'s options, names and values, on our engine.

Options may also come from an OpenSSL config file (`-config`, `-section`), as for `openssl cmp`;
the command line wins. Two additions: `-host` (OpenSSL's mock binds every interface; ours binds
127.0.0.1 unless told otherwise) and `-compat 3.0` (OpenSSL 3.0/3.1's mock behaviour).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from cryptography import x509

from sanscmp.engine.asn1 import PKIMessage, body_name, null_dn
from sanscmp.engine.authentication import ProtectionPolicy
from sanscmp.engine.client import directory_name
from sanscmp.engine.errors import FailInfo
from sanscmp.engine.events import ClientIdentity
from sanscmp.engine.handlers import CmpServer
from sanscmp.engine.keygen import KeyPackageFormat
from sanscmp.engine.protection import MacCredential, SignatureCredential
from sanscmp.engine.server import ServerConfig, ServerOptions
from sanscmp.engine.trust import TrustConfig
from sanscmp.transport.http import CmpHttpApp, HttpConfig
from sanscmp.transport.service import EngineService

from .mock import PKI_STATUSES, MockHandlers, MockResponses
from .openssl_inputs import (
    InputError,
    config_options,
    load_certificate,
    load_certificates,
    load_crl,
    load_private_key,
    read_password,
)
from .wiring import SWEEP_INTERVAL, SystemClock

MAX_FAILURE_BIT = 26  # OSSL_CMP_PKIFAILUREINFO_MAX
MOCK_PATHS = ("/", "/pkix/")  # what OpenSSL's mock serves ("" and "pkix/")


class AnyReference:
    """The mock's one PBM secret, whatever senderKID a client uses (as OpenSSL's mock)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def secret_for(self, sender_kid: bytes | None) -> bytes | None:
        return self._secret


@dataclass
class UnprotectedAnswers:
    """An authenticator that verifies requests as `policy` does but protects no answer
    (`-send_unprotected`)."""

    policy: ProtectionPolicy

    def authenticate(self, message: PKIMessage, now: datetime) -> ClientIdentity:
        return self.policy.authenticate(message, now)

    def protect(self, message: PKIMessage, client: ClientIdentity | None) -> PKIMessage:
        return message

    def pkmac_verifier(self, client: ClientIdentity) -> Any:
        return self.policy.pkmac_verifier(client)


def _flag(name: str, text: str) -> Any:
    return click.option("-" + name, name, is_flag=True, default=False, help=text)


def _value(name: str, text: str, kind: Any = str) -> Any:
    return click.option("-" + name, name, type=kind, default=None, help=text)


NONNEG = click.IntRange(min=0)

OPTIONS = [
    _value("config", "OpenSSL configuration file to read options from.", click.Path()),
    _value("section", "Section(s) of -config to use, separated by ':' (default: cmp)."),
    _value("verbosity", "Log level 0..8 (default 6: info).", click.IntRange(0, 8)),
    _value("port", "Act as HTTP-based mock server listening on this port."),
    _value("host", "Interface to bind (sanscmp; default 127.0.0.1)."),
    _value("max_msgs", "Stop after this many messages; 0 = unlimited.", NONNEG),
    _value("srv_ref", "Reference value (senderKID) of the server if no -srv_cert is given."),
    _value("srv_secret", "Pass phrase source of the server's PBM secret."),
    _value("srv_cert", "Certificate of the server."),
    _value("srv_key", "Private key the server signs its messages with."),
    _value("srv_keypass", "Pass phrase source of -srv_key (and -srv_cert)."),
    _value("srv_trusted", "Trusted certificates for client authentication."),
    _value("srv_untrusted", "Intermediate certificates for verifying CMP protection."),
    _value("ref_cert", "Certificate to expect for oldCertID in kur and rr."),
    _value("rsp_cert", "Certificate to be returned as mock enrollment result."),
    _value("rsp_key", "Private key to return for central key generation."),
    _value("rsp_keypass", "Pass phrase source of -rsp_cert and -rsp_key."),
    _value("rsp_crl", "CRL to return in genp for crlStatusList."),
    _value("rsp_extracerts", "Extra certificates to include in mock certification responses."),
    _value("rsp_capubs", "CA certificates to include in ip and in genp caCerts."),
    _value("rsp_newwithnew", "newWithNew certificate of genp rootCaKeyUpdate."),
    _value("rsp_newwithold", "newWithOld certificate of genp rootCaKeyUpdate."),
    _value("rsp_oldwithnew", "oldWithNew certificate of genp rootCaKeyUpdate."),
    _value("otherpass", "Pass phrase source of -ref_cert and the -rsp_newwith* files."),
    _value("keyform", "Key format (ignored: PEM, DER and PKCS#12 are recognised)."),
    _value("poll_count", "Number of polls before the final answer.", NONNEG),
    _value("check_after", "checkAfter value (seconds) in pollRep.", NONNEG),
    _flag("grant_implicitconf", "Grant implicit confirmation of newly enrolled certificates."),
    _value("pkistatus", "PKIStatus of the responses, 0..6.", click.IntRange(0, 6)),
    _value("failure", "A single failure info bit number, 0..26.", int),
    _value("failurebits", "Failure info bits as a number, 0..2^27-1.", NONNEG),
    _value("statusstring", "Status string to include in the responses."),
    _flag("send_error", "Answer every request with an error message."),
    _flag("send_unprotected", "Send responses without CMP-level protection."),
    _flag("send_unprot_err", "Send negative responses unprotected (violates RFC 9810)."),
    _flag("accept_unprotected", "Accept missing or invalid protection of requests."),
    _flag("accept_unprot_err", "Accept unprotected error messages from clients."),
    _flag("accept_raverified", "Accept RAVERIFIED as proof-of-possession."),
    _value(
        "compat", "Mock behaviour of this OpenSSL version (sanscmp).", click.Choice(["3.0", "3.5"])
    ),
]


def mock_options(command: Any) -> Any:
    for option in reversed(OPTIONS):
        command = option(command)
    return command


@click.command(context_settings={"help_option_names": ["-help", "-h", "--help"]})
@mock_options
@click.pass_context
def mock(ctx: click.Context, /, **given: Any) -> None:
    """A drop-in for OpenSSL's CMP mock server (`openssl cmp -port ...`), on sanscmp's engine.

    Same option names, values and behaviour; serves CMP over HTTP at "/" and "/pkix/".
    """
    values = _with_config(ctx, given)
    try:
        server = build_mock_server(values)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    if values.get("port") is None:
        raise click.ClickException("-port is required")
    _serve(server, values)


def _with_config(ctx: click.Context, given: dict[str, Any]) -> dict[str, Any]:
    """Command-line values, completed from the -config file's sections."""
    values = dict(given)
    if given.get("config") is None:
        return values
    try:
        from_file = config_options(Path(given["config"]), given.get("section") or "cmp")
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    by_name = {p.name: p for p in ctx.command.params}
    for key, text in from_file.items():
        parameter = by_name.get(key)
        if parameter is None or ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE:
            continue
        if isinstance(parameter, click.Option) and parameter.is_flag:
            values[key] = text.strip().lower() in ("1", "true", "yes", "on", "y")
        else:
            values[key] = parameter.type_cast_value(ctx, text)
    return values


def build_mock_server(values: dict[str, Any]) -> CmpServer:
    """The engine with the mock handler set, configured like `setup_srv_ctx` in apps/cmp.c."""
    secret = read_password(values["srv_secret"]) if values.get("srv_secret") else None
    srv_cert_name, srv_key_name = values.get("srv_cert"), values.get("srv_key")
    if values.get("srv_ref") is None and srv_cert_name is None:
        raise InputError("must give -srv_ref for mock server if no -srv_cert given")
    if secret is None and srv_cert_name is None:
        raise InputError("server credentials (-srv_secret or -srv_cert) must be given")
    if secret is None and (srv_cert_name is None) != (srv_key_name is None):
        raise InputError("must give both -srv_cert and -srv_key options or neither")
    keypass = values.get("srv_keypass")
    srv_cert = load_certificate(srv_cert_name, keypass) if srv_cert_name else None
    untrusted = _certificates(values.get("srv_untrusted"))
    credential = None
    if srv_cert is not None and srv_key_name is not None:
        key = load_private_key(srv_key_name, keypass)
        credential = SignatureCredential(key, srv_cert, _chain_of(srv_cert, untrusted))  # type: ignore[arg-type]
    reference = values["srv_ref"].encode() if values.get("srv_ref") else None
    trusted = _certificates(values.get("srv_trusted"))
    policy = ProtectionPolicy(
        random=os.urandom,
        mac_secrets=AnyReference(secret) if secret is not None else None,
        trust=TrustConfig(anchors=tuple(trusted), intermediates=tuple(untrusted))
        if trusted
        else None,
        credential=credential,
        fallback_mac=MacCredential(reference, secret) if secret is not None else None,
    )
    options = ServerOptions(
        send_unprotected_errors=values["send_unprot_err"],
        accept_unprotected=values["accept_unprotected"],
        accept_raverified=values["accept_raverified"],
        grant_implicit_confirm=values["grant_implicitconf"],
        accept_unprotected_errors=values["accept_unprot_err"],
        central_key_package=KeyPackageFormat.OPENSSL,  # what OpenSSL 3.5 clients can read
    )
    config = ServerConfig(
        name=directory_name(srv_cert.subject) if srv_cert is not None else null_dn(),
        clock=SystemClock(),
        random=os.urandom,
        authenticator=UnprotectedAnswers(policy) if values["send_unprotected"] else policy,
        options=options,
        key_generation_authority=credential,  # also when -send_unprotected hides the policy
    )
    server = CmpServer(config)
    responses = mock_responses(values)
    server.init(responses, MockHandlers(responses).handlers())
    return server


def mock_responses(values: dict[str, Any]) -> MockResponses:
    """The `-rsp_*`, `-ref_cert`, status and polling options as `MockResponses`."""
    rsp_pass, other_pass = values.get("rsp_keypass"), values.get("otherpass")
    failure, bits = values.get("failure"), values.get("failurebits") or 0
    if failure is not None:
        if not 0 <= failure <= MAX_FAILURE_BIT:
            raise InputError(f"-failure out of range, should be >= 0 and <= {MAX_FAILURE_BIT}")
        if bits == 0:
            bits = 1 << failure
    if bits >= 1 << (MAX_FAILURE_BIT + 1):
        raise InputError("-failurebits out of range")

    def one(name: str, password: str | None) -> x509.Certificate | None:
        return load_certificate(values[name], password) if values.get(name) else None

    return MockResponses(
        cert_out=one("rsp_cert", rsp_pass),
        key_out=load_private_key(values["rsp_key"], rsp_pass) if values.get("rsp_key") else None,
        ref_cert=one("ref_cert", other_pass),
        crl_out=load_crl(values["rsp_crl"]) if values.get("rsp_crl") else None,
        chain_out=tuple(_certificates(values.get("rsp_extracerts"))),
        ca_pubs_out=tuple(_certificates(values.get("rsp_capubs"))),
        new_with_new=one("rsp_newwithnew", other_pass),
        new_with_old=one("rsp_newwithold", other_pass),
        old_with_new=one("rsp_oldwithnew", other_pass),
        status=PKI_STATUSES[values.get("pkistatus") or 0],
        fail_info=frozenset(bit for bit in FailInfo if bits & (1 << bit.value)),
        status_string=values.get("statusstring") or "",
        send_error=values["send_error"],
        poll_count=values.get("poll_count") or 0,
        check_after=values.get("check_after") or 0,
        compat=values.get("compat") or "3.5",
    )


def mock_app(server: CmpServer, verbosity: int = 6) -> CmpHttpApp:
    """The HTTP front end: OpenSSL's mock paths, expired transactions swept now and then."""
    last_sweep = time.monotonic()

    def process(request: bytes) -> PKIMessage:
        nonlocal last_sweep
        if time.monotonic() - last_sweep > SWEEP_INTERVAL:
            last_sweep = time.monotonic()
            server.expire()
        response = server.process_request(request)
        if verbosity >= 6:
            _log(response)
        return response

    services = {"": EngineService(process)}
    return CmpHttpApp(HttpConfig(services=services, legacy_paths=MOCK_PATHS))


class MessageLimit:
    """`-max_msgs`: after that many HTTP requests, refuse more (503) and stop the server."""

    def __init__(self, app: CmpHttpApp, limit: int) -> None:
        self.app, self.limit, self.count = app, limit, 0
        self.server: Any = None  # the uvicorn.Server to stop

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.count >= self.limit:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        self.count += 1
        await self.app(scope, receive, send)
        if self.count >= self.limit and self.server is not None:
            self.server.should_exit = True


def _serve(server: CmpServer, values: dict[str, Any]) -> None:
    import uvicorn

    from sanscmp.transport.quickack import QuickAckHttpProtocol

    host, _, port = str(values["port"]).rpartition(":")
    host = values.get("host") or host or "127.0.0.1"
    verbosity = values["verbosity"] if values.get("verbosity") is not None else 6
    app: Any = mock_app(server, verbosity)
    if values.get("max_msgs"):
        app = MessageLimit(app, values["max_msgs"])
    config = uvicorn.Config(
        app,
        host=host,
        port=int(port),
        http=QuickAckHttpProtocol,
        log_level="warning" if verbosity >= 4 else "error",
        access_log=False,
    )
    runner = uvicorn.Server(config)
    if isinstance(app, MessageLimit):
        app.server = runner
    click.echo(f"sanscmp mock server listening on http://{host}:{port}/", err=True)
    runner.run()


def _log(response: PKIMessage) -> None:
    """One line per answer, like OpenSSL's mock at its default verbosity; errors with status."""
    name = body_name(response)
    line = f"CMP info: sending {name}"
    if name == "error":
        info = response["body"].chosen["pKIStatusInfo"].native
        texts = "; ".join(info["statusString"] or ())
        bits = ", ".join(sorted(info["failInfo"] or ()))
        line += (
            f": {info['status']}" + (f" ({bits})" if bits else "") + (f": {texts}" if texts else "")
        )
    print(line, file=sys.stderr, flush=True)


def _certificates(names: str | None) -> list[x509.Certificate]:
    return load_certificates(names) if names else []


def _chain_of(
    certificate: x509.Certificate, candidates: list[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """The issuers of `certificate` found among `candidates`, up to a self-signed one."""
    chain: list[x509.Certificate] = []
    current = certificate
    while current.issuer != current.subject:
        issuer = next((c for c in candidates if c.subject == current.issuer and c != current), None)
        if issuer is None or issuer in chain:
            break
        chain.append(issuer)
        current = issuer
    return tuple(chain)
