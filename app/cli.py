"""The `sanscmp` command: init, serve, and the operator's certs / revoke / requests commands."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sanscmp.ca.store import IssuedCertificate, PendingApproval, SqliteStore

from .config import ConfigError, Settings, load_settings
from .mock_command import mock
from .provision import KEY_TYPES, Provisioned, ProvisionError, provision

DEFAULT_DIRECTORY = Path("sanscmp-data")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sanscmp")
def main() -> None:
    """sanscmp: a CMP (RFC 9810) server with its own certification authority."""


main.add_command(mock)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--key-type",
    type=click.Choice(KEY_TYPES),
    default="ec",
    show_default=True,
    help="CA and CMP server key: EC P-256 or RSA-3072.",
)
@click.option(
    "--pbm-ref", help="PBM reference (senderKID) of the first client; generated if absent."
)
@click.option("--pbm-secret", help="PBM secret of that client; generated if absent.")
@click.option("--ca-name", default="sanscmp demo CA", show_default=True, help="CA common name.")
@click.option("--port", default=8080, show_default=True, help="Port written to the configuration.")
def init(
    directory: Path,
    key_type: str,
    pbm_ref: str | None,
    pbm_secret: str | None,
    ca_name: str,
    port: int,
) -> None:
    """Create a CA, a CMP server certificate, a PBM client and the configuration in DIRECTORY."""
    try:
        made = provision(
            directory,
            key_type=key_type,
            pbm_reference=pbm_ref,
            pbm_secret=pbm_secret,
            ca_name=ca_name,
            port=port,
        )
    except ProvisionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_enrol_instructions(made, "sanscmp init"))


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", help="Interface to bind (default from the configuration: 127.0.0.1).")
@click.option("--port", type=int, help="Port (default from the configuration: 8080).")
@click.option("--workers", type=int, help="Worker processes (default from the configuration: 1).")
def serve(directory: Path | None, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve CMP over HTTP at /.well-known/cmp (and /.well-known/cmp/p/<profile>).

    Without DIRECTORY, a demo CA is created in ./sanscmp-data on first start and served.
    """
    import uvicorn

    from sanscmp.transport.quickack import QuickAckHttpProtocol

    from .wiring import DIRECTORY_VARIABLE

    embedded = directory is None
    if directory is None:
        directory = DEFAULT_DIRECTORY
        if not (directory / "sanscmp.toml").exists():
            provision(directory, port=port or 8080)
    settings = _settings(directory)
    host, port = host or settings.host, port or settings.port
    if embedded and settings.pbm_secrets:
        reference, secret = next(iter(settings.pbm_secrets.items()))
        made = Provisioned(directory, settings.ca_certificate, reference, secret, port)
        click.echo(_enrol_instructions(made, "the embedded default", serving=True))
    os.environ[DIRECTORY_VARIABLE] = str(settings.directory)
    click.echo(f"sanscmp serving {settings.directory} on http://{host}:{port}/.well-known/cmp")
    uvicorn.run(
        "sanscmp.app.wiring:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.workers,
        http=QuickAckHttpProtocol,
        log_level="warning",
        access_log=False,
    )


def _settings(directory: Path) -> Settings:
    try:
        return load_settings(directory)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _store(directory: Path) -> SqliteStore:
    return SqliteStore(_settings(directory).database)


directory_option = click.option(
    "--dir",
    "-d",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIRECTORY,
    show_default=True,
    help="The sanscmp directory.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@main.group()
def certs() -> None:
    """Certificates this CA issued."""


@certs.command("list")
@directory_option
@click.option("--status", type=click.Choice(["unconfirmed", "active", "revoked"]))
@click.option("--limit", default=100, show_default=True)
@json_option
def certs_list(directory: Path, status: str | None, limit: int, as_json: bool) -> None:
    """List issued certificates, newest first."""
    records = _store(directory).list_certificates(status=status, limit=limit)
    if as_json:
        click.echo(json.dumps([_certificate_json(r) for r in records], indent=2))
        return
    for r in records:
        click.echo(f"{r.serial:x}  {r.status:<11}  {r.not_after:%Y-%m-%d}  {r.subject}")


@certs.command("show")
@click.argument("serial")
@directory_option
@json_option
@click.option("--pem", is_flag=True, help="Print the certificate in PEM.")
def certs_show(serial: str, directory: Path, as_json: bool, pem: bool) -> None:
    """Show one certificate by its serial number (hexadecimal)."""
    record = _store(directory).get(_serial(serial))
    if record is None:
        raise click.ClickException(f"no certificate with serial {serial}")
    if pem:
        certificate = x509.load_der_x509_certificate(record.der)
        click.echo(certificate.public_bytes(Encoding.PEM).decode(), nl=False)
    elif as_json:
        click.echo(json.dumps(_certificate_json(record), indent=2))
    else:
        for key, value in _certificate_json(record).items():
            click.echo(f"{key:>14}: {value}")


@main.command()
@click.argument("serial")
@directory_option
@click.option(
    "--reason",
    type=click.IntRange(0, 10),
    default=0,
    show_default=True,
    help="CRL reason code (1 keyCompromise, 4 superseded, 5 cessationOfOperation...).",
)
def revoke(serial: str, directory: Path, reason: int) -> None:
    """Revoke a certificate by its serial number (hexadecimal)."""
    store = _store(directory)
    record = store.get(_serial(serial))
    if record is None:
        raise click.ClickException(f"no certificate with serial {serial}")
    if record.status == "revoked":
        raise click.ClickException(f"certificate {serial} is already revoked")
    try:
        store.set_status(record.serial, "revoked", revoked_at=datetime.now(UTC), reason=reason)
    except ValueError as exc:
        raise click.ClickException(f"cannot revoke {serial}: {exc}") from None
    click.echo(f"revoked {record.serial:x} ({record.subject}), reason {reason}")


@main.group()
def requests() -> None:
    """Requests waiting for an operator (profiles with approval = "manual")."""


@requests.command("list")
@directory_option
@click.option("--state", type=click.Choice(["pending", "approved", "rejected"]))
@json_option
def requests_list(directory: Path, state: str | None, as_json: bool) -> None:
    """List requests awaiting (or past) approval."""
    pending = _store(directory).list_pending(state=state)
    if as_json:
        click.echo(json.dumps([_pending_json(p) for p in pending], indent=2))
        return
    for p in pending:
        click.echo(f"{p.transaction_id.hex()}  {p.state:<8}  {p.profile}  {p.summary}")


@requests.command("approve")
@click.argument("transaction_id")
@directory_option
def requests_approve(transaction_id: str, directory: Path) -> None:
    """Approve a waiting request: the client receives its certificate at its next poll."""
    _decide(directory, transaction_id, approved=True, reason="")
    click.echo(f"approved {transaction_id}")


@requests.command("reject")
@click.argument("transaction_id")
@directory_option
@click.option("--reason", default="rejected by an operator", show_default=True)
def requests_reject(transaction_id: str, directory: Path, reason: str) -> None:
    """Reject a waiting request: the client is refused at its next poll."""
    _decide(directory, transaction_id, approved=False, reason=reason)
    click.echo(f"rejected {transaction_id}")


def _decide(directory: Path, transaction_id: str, *, approved: bool, reason: str) -> None:
    try:
        tid = bytes.fromhex(transaction_id)
    except ValueError:
        raise click.ClickException("TRANSACTION_ID is hexadecimal") from None
    try:
        _store(directory).decide_pending(tid, approved, reason, datetime.now(UTC))
    except (KeyError, ValueError) as exc:
        raise click.ClickException(f"cannot decide {transaction_id}: {exc}") from None


def _serial(text: str) -> int:
    try:
        return int(text.removeprefix("0x"), 16)
    except ValueError:
        raise click.ClickException("SERIAL is hexadecimal") from None


def _certificate_json(record: IssuedCertificate) -> dict[str, object]:
    return {
        "serial": f"{record.serial:x}",
        "subject": record.subject,
        "status": record.status,
        "not_before": record.not_before.isoformat(),
        "not_after": record.not_after.isoformat(),
        "profile": record.profile,
        "transaction_id": record.transaction_id.hex(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "reason": record.reason,
    }


def _pending_json(pending: PendingApproval) -> dict[str, object]:
    return {
        "transaction_id": pending.transaction_id.hex(),
        "profile": pending.profile,
        "summary": pending.summary,
        "state": pending.state,
        "reason": pending.reason,
        "created_at": pending.created_at.isoformat(),
    }


def _enrol_instructions(made: Provisioned, how: str, *, serving: bool = False) -> str:
    d = made.directory
    start = "" if serving else f"Start the server:\n  sanscmp serve {d}\n\n"
    return f"""CA in {d} ({how}).
  CA certificate: {made.ca_certificate}
  PBM reference:  {made.pbm_reference}
  PBM secret:     {made.pbm_secret}

{start}Enrol a certificate with OpenSSL:
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client-key.pem
  openssl cmp -cmd ir -server 127.0.0.1:{made.port} -path /.well-known/cmp \\
      -ref {made.pbm_reference} -secret pass:{made.pbm_secret} \\
      -newkey client-key.pem -subject "/CN=client" -certout client.pem"""


if __name__ == "__main__":
    sys.exit(main())
