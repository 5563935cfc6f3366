"""The `sanscmp` command: --help everywhere, init, and the operator commands on a real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sanscmp.app.cli import main
from sanscmp.app.config import ConfigError, load_settings
from sanscmp.app.wiring import build_app
from sanscmp.ca.store import IssuedCertificate, SqliteStore

COMMANDS = [
    [],
    ["init"],
    ["serve"],
    ["certs"],
    ["certs", "list"],
    ["certs", "show"],
    ["revoke"],
    ["requests"],
    ["requests", "list"],
    ["requests", "approve"],
    ["requests", "reject"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "sanscmp")
def test_help_everywhere(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    result = CliRunner().invoke(
        main, ["init", str(tmp_path / "ca"), "--pbm-ref", "r", "--pbm-secret", "s"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "ca"


def test_init_writes_stable_names_and_prints_what_to_use(directory: Path) -> None:
    names = {p.name for p in directory.iterdir()}
    assert {"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "sanscmp.toml"} <= names
    assert (directory / "ca-key.pem").stat().st_mode & 0o077 == 0
    assert (directory / "sanscmp.toml").stat().st_mode & 0o077 == 0
    settings = load_settings(directory)
    assert settings.pbm_secrets == {"r": "s"}
    assert set(settings.profiles) == {"default", "manual"}
    ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    server = x509.load_pem_x509_certificate((directory / "server.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(("written", "pragma"), [(None, 2), ('"FULL"', 2), ('"normal"', 1)])
def test_storage_synchronous_reaches_the_served_store(
    directory: Path, written: str | None, pragma: int
) -> None:
    """`[storage] synchronous` (FULL by default) is what the served SQLite connection uses."""
    config = directory / "sanscmp.toml"
    text = config.read_text()
    assert 'synchronous = "FULL"' in text  # init writes the default out
    if written is None:
        text = text.replace('synchronous = "FULL"', "")
    else:
        text = text.replace('synchronous = "FULL"', f"synchronous = {written}")
    config.write_text(text)
    app = build_app(load_settings(directory))
    endpoint = app.config.services["default"].process.__self__  # type: ignore[attr-defined]
    assert endpoint.store._connection().execute("PRAGMA synchronous").fetchone()[0] == pragma


def test_storage_synchronous_refuses_unsafe_values(directory: Path) -> None:
    config = directory / "sanscmp.toml"
    config.write_text(config.read_text().replace('synchronous = "FULL"', 'synchronous = "OFF"'))
    with pytest.raises(ConfigError, match="synchronous"):
        load_settings(directory)


def test_init_refuses_to_overwrite(directory: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(directory)])
    assert result.exit_code != 0 and "exists already" in result.output


def test_certs_list_show_and_revoke(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name.from_rfc4514_string("CN=listed")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0xABCDEF0123456789)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with SqliteStore(load_settings(directory).database) as store:
        store.add(
            IssuedCertificate(
                serial=cert.serial_number,
                der=cert.public_bytes(serialization.Encoding.DER),
                subject="CN=listed",
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                profile="default",
                transaction_id=b"\x01" * 16,
                status="active",
            )
        )
    run = CliRunner().invoke
    listed = json.loads(run(main, ["certs", "list", "--dir", str(directory), "--json"]).output)
    assert [(c["serial"], c["status"]) for c in listed] == [("abcdef0123456789", "active")]
    pem = run(main, ["certs", "show", "abcdef0123456789", "--dir", str(directory), "--pem"])
    assert x509.load_pem_x509_certificate(pem.output.encode()) == cert
    revoked = run(main, ["revoke", "abcdef0123456789", "--reason", "1", "--dir", str(directory)])
    assert revoked.exit_code == 0, revoked.output
    shown = run(main, ["certs", "show", "abcdef0123456789", "--dir", str(directory), "--json"])
    assert (json.loads(shown.output)["status"], json.loads(shown.output)["reason"]) == (
        "revoked",
        1,
    )
    again = run(main, ["revoke", "abcdef0123456789", "--dir", str(directory)])
    assert again.exit_code != 0 and "already revoked" in again.output
    unknown = run(main, ["certs", "show", "99", "--dir", str(directory)])
    assert unknown.exit_code != 0 and "no certificate" in unknown.output


def test_requests_on_an_empty_queue(directory: Path) -> None:
    run = CliRunner().invoke
    assert (
        json.loads(run(main, ["requests", "list", "--dir", str(directory), "--json"]).output) == []
    )
    refused = run(main, ["requests", "approve", "00ff", "--dir", str(directory)])
    assert refused.exit_code != 0 and "cannot decide" in refused.output


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["certs", "list", "--dir", str(tmp_path / "nowhere")])
    assert result.exit_code != 0 and "sanscmp init" in result.output
