"""The `sanscmp` command: init, serve, and the operator's certs / revoke / requests commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .config import ConfigError, load_settings
from .provision import KEY_TYPES, Provisioned, ProvisionError, provision

DEFAULT_DIRECTORY = Path("sanscmp-data")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sanscmp")
def main() -> None:
    """sanscmp: a CMP (RFC 9810) server with its own certification authority."""


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

    from .wiring import DIRECTORY_VARIABLE

    if directory is None:
        directory = DEFAULT_DIRECTORY
        if not (directory / "sanscmp.toml").exists():
            made = provision(directory, port=port or 8080)
            click.echo(_enrol_instructions(made, "first start"))
    settings = _settings(directory)
    host, port = host or settings.host, port or settings.port
    os.environ[DIRECTORY_VARIABLE] = str(settings.directory)
    click.echo(f"sanscmp serving {settings.directory} on http://{host}:{port}/.well-known/cmp")
    uvicorn.run(
        "sanscmp.app.wiring:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.workers,
        log_level="warning",
        access_log=False,
    )


def _settings(directory: Path):  # type: ignore[no-untyped-def]
    try:
        return load_settings(directory)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _enrol_instructions(made: Provisioned, how: str) -> str:
    d = made.directory
    return f"""Created a CA in {d} ({how}).
  CA certificate: {made.ca_certificate}
  PBM reference:  {made.pbm_reference}
  PBM secret:     {made.pbm_secret}

Start the server:
  sanscmp serve {d}

Enrol a certificate with OpenSSL:
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client-key.pem
  openssl cmp -cmd ir -server 127.0.0.1:{made.port} -path /.well-known/cmp \\
      -ref {made.pbm_reference} -secret pass:{made.pbm_secret} \\
      -newkey client-key.pem -subject "/CN=client" -certout client.pem"""


if __name__ == "__main__":
    sys.exit(main())
