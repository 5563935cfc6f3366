"""The real server (`sanscmp serve`, uvicorn on 127.0.0.1) driven by the real `openssl cmp` client.

Asserts on the issued certificates' actual content (subject, SANs, key, validity, extensions,
chain to the CA) and on the CA's records (`sanscmp certs`), through ir, cr, p10cr, kur, rr, genm,
implicit and explicit confirm, PBM and signature protection (EC and RSA), manual approval with
polling, the rejection paths, and a SIGKILL restart between ip and certConf.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.client import CertRequestSpec, ClientConfig, ClientEngine
from sanscmp.engine.protection import MacCredential

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
]

SANSCMP = [sys.executable, "-m", "sanscmp.app.cli"]
REF, SECRET = "interop-client", "interop-secret-123"


@dataclass
class Server:
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*SANSCMP, "serve", str(self.directory), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(self.process.stderr.read().decode()) from None  # type: ignore[union-attr]
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*SANSCMP, *args, "--dir", str(self.directory)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout
        return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("ca")
    subprocess.run(
        [*SANSCMP, "init", str(directory), "--pbm-ref", REF, "--pbm-secret", SECRET],
        check=True,
        capture_output=True,
        timeout=60,
    )
    running = Server(directory, _free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def ec_key(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def rsa_key(path: Path, bits: int = 2048) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def cmp(
    server: Server, *args: str, path: str = "/.well-known/cmp"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "cmp", "-server", server.url, "-path", path, "-verbosity", "4", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # openssl cmp logs to both; one stream keeps the order
        text=True,
        timeout=60,
    )


def pbm(*args: str) -> list[str]:
    return ["-ref", REF, "-secret", f"pass:{SECRET}", *args]


def signed(server: Server, cert: Path, key: Path, *args: str) -> list[str]:
    return [
        "-cert",
        str(cert),
        "-key",
        str(key),
        "-trusted",
        str(server.directory / "ca.pem"),
        *args,
    ]


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def public_der(key_path: Path) -> bytes:
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def enrol(server: Server, work: Path, name: str, *extra: str) -> tuple[Path, Path]:
    key = ec_key(work / f"{name}-key.pem")
    cert = work / f"{name}.pem"
    done = cmp(
        server,
        "-cmd",
        "ir",
        *pbm(),
        "-newkey",
        str(key),
        "-subject",
        f"/CN={name}",
        "-certout",
        str(cert),
        *extra,
    )
    assert done.returncode == 0, done.stdout
    return cert, key


def record(server: Server, certificate: x509.Certificate) -> dict[str, object]:
    shown: dict[str, object] = json.loads(
        server.cli("certs", "show", f"{certificate.serial_number:x}", "--json")
    )
    return shown


def assert_issued(server: Server, certificate: x509.Certificate, key: Path, subject: str) -> None:
    ca = load(server.directory / "ca.pem")
    assert certificate.subject.rfc4514_string() == subject
    assert certificate.issuer == ca.subject
    certificate.verify_directly_issued_by(ca)
    assert certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == public_der(key)
    now = datetime.now(UTC)
    assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc <= timedelta(days=366)
    assert certificate.serial_number.bit_length() >= 64
    basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(certificate.public_key())
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest


# ---- enrolment -------------------------------------------------------------------------------


def test_ir_with_pbm_and_explicit_confirm(server: Server, work: Path) -> None:
    cert, key = enrol(server, work, "alice", "-sans", "alice.example 192.0.2.7", "-days", "30")
    issued = load(cert)
    assert_issued(server, issued, key, "CN=alice")
    sans = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["alice.example"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]
    assert issued.not_valid_after_utc - issued.not_valid_before_utc <= timedelta(days=30, minutes=6)
    assert record(server, issued)["status"] == "active"


def test_ir_with_implicit_confirm(server: Server, work: Path) -> None:
    cert, key = enrol(server, work, "bob", "-implicit_confirm")
    assert_issued(server, load(cert), key, "CN=bob")
    assert record(server, load(cert))["status"] == "active"


def test_ir_rsa_key(server: Server, work: Path) -> None:
    key = rsa_key(work / "rsa-key.pem")
    done = cmp(
        server,
        "-cmd",
        "ir",
        *pbm(),
        "-newkey",
        str(key),
        "-subject",
        "/CN=rsa",
        "-certout",
        str(work / "rsa.pem"),
    )
    assert done.returncode == 0, done.stdout
    assert_issued(server, load(work / "rsa.pem"), key, "CN=rsa")


def test_cr_signed_with_an_enrolled_ec_certificate(server: Server, work: Path) -> None:
    cert, key = enrol(server, work, "carol")
    new_key = ec_key(work / "carol2-key.pem")
    done = cmp(
        server,
        "-cmd",
        "cr",
        *signed(server, cert, key),
        "-newkey",
        str(new_key),
        "-subject",
        "/CN=carol2",
        "-certout",
        str(work / "carol2.pem"),
    )
    assert done.returncode == 0, done.stdout
    assert_issued(server, load(work / "carol2.pem"), new_key, "CN=carol2")


def test_cr_signed_with_an_rsa_certificate(server: Server, work: Path) -> None:
    key = rsa_key(work / "r-key.pem")
    assert (
        cmp(
            server,
            "-cmd",
            "ir",
            *pbm(),
            "-newkey",
            str(key),
            "-subject",
            "/CN=r",
            "-certout",
            str(work / "r.pem"),
        ).returncode
        == 0
    )
    new_key = ec_key(work / "r2-key.pem")
    done = cmp(
        server,
        "-cmd",
        "cr",
        *signed(server, work / "r.pem", key),
        "-newkey",
        str(new_key),
        "-subject",
        "/CN=r2",
        "-certout",
        str(work / "r2.pem"),
    )
    assert done.returncode == 0, done.stdout
    assert_issued(server, load(work / "r2.pem"), new_key, "CN=r2")


def test_p10cr(server: Server, work: Path) -> None:
    cert, key = enrol(server, work, "dave")
    csr_key = ec_key(work / "csr-key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            str(csr_key),
            "-subj",
            "/CN=dave-csr",
            "-out",
            str(work / "req.csr"),
        ],
        check=True,
        capture_output=True,
    )
    done = cmp(
        server,
        "-cmd",
        "p10cr",
        *signed(server, cert, key),
        "-csr",
        str(work / "req.csr"),
        "-certout",
        str(work / "dave-csr.pem"),
    )
    assert done.returncode == 0, done.stdout
    assert_issued(server, load(work / "dave-csr.pem"), csr_key, "CN=dave-csr")


def test_kur_replaces_and_revokes_the_old_certificate(server: Server, work: Path) -> None:
    cert, key = enrol(server, work, "erin")
    new_key = ec_key(work / "erin-new-key.pem")
    done = cmp(
        server,
        "-cmd",
        "kur",
        *signed(server, cert, key),
        "-newkey",
        str(new_key),
        "-certout",
        str(work / "erin-new.pem"),
    )
    assert done.returncode == 0, done.stdout
    renewed = load(work / "erin-new.pem")
    assert_issued(server, renewed, new_key, "CN=erin")
    assert record(server, load(cert))["status"] == "revoked"
    assert record(server, renewed)["status"] == "active"


def test_rr_with_reasons_then_twice(server: Server, work: Path) -> None:
    for reason in ("1", "4"):
        cert, key = enrol(server, work, f"frank{reason}")
        done = cmp(
            server,
            "-cmd",
            "rr",
            *signed(server, cert, key),
            "-oldcert",
            str(cert),
            "-revreason",
            reason,
        )
        assert done.returncode == 0, done.stdout
        shown = record(server, load(cert))
        assert (shown["status"], shown["reason"]) == ("revoked", int(reason))
    again = cmp(server, "-cmd", "rr", *signed(server, cert, key), "-oldcert", str(cert))
    assert again.returncode != 0


def test_rr_of_someone_elses_certificate_is_refused(server: Server, work: Path) -> None:
    victim, _ = enrol(server, work, "victim")
    attacker, attacker_key = enrol(server, work, "mallory")
    done = cmp(
        server, "-cmd", "rr", *signed(server, attacker, attacker_key), "-oldcert", str(victim)
    )
    assert done.returncode != 0
    assert record(server, load(victim))["status"] == "active"


def test_genm(server: Server, work: Path) -> None:
    done = cmp(server, "-cmd", "genm", *pbm())
    assert done.returncode == 0, done.stdout


# ---- rejections ------------------------------------------------------------------------------


def test_wrong_secret_is_refused(server: Server, work: Path) -> None:
    key = ec_key(work / "k.pem")
    done = cmp(
        server,
        "-cmd",
        "ir",
        "-ref",
        REF,
        "-secret",
        "pass:wrong",
        "-newkey",
        str(key),
        "-subject",
        "/CN=nope",
        "-certout",
        str(work / "nope.pem"),
    )
    assert done.returncode != 0
    assert not (work / "nope.pem").exists()


def test_disallowed_key_is_rejected(server: Server, work: Path) -> None:
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
            "-out",
            str(work / "k1.pem"),
        ],
        check=True,
        capture_output=True,
    )
    done = cmp(
        server,
        "-cmd",
        "ir",
        *pbm(),
        "-newkey",
        str(work / "k1.pem"),
        "-subject",
        "/CN=k1",
        "-certout",
        str(work / "k1cert.pem"),
    )
    assert done.returncode != 0
    assert "badAlg" in done.stdout


def test_untrusted_signer_is_refused(server: Server, work: Path) -> None:
    key = ec_key(work / "self-key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-new",
            "-key",
            str(key),
            "-subj",
            "/CN=self",
            "-days",
            "1",
            "-out",
            str(work / "self.pem"),
        ],
        check=True,
        capture_output=True,
    )
    done = cmp(
        server,
        "-cmd",
        "cr",
        *signed(server, work / "self.pem", key),
        "-newkey",
        str(ec_key(work / "n.pem")),
        "-subject",
        "/CN=n",
        "-certout",
        str(work / "n.c"),
    )
    assert done.returncode != 0


def test_unknown_profile_label(server: Server, work: Path) -> None:
    key = ec_key(work / "k.pem")
    done = cmp(
        server,
        "-cmd",
        "ir",
        *pbm(),
        "-newkey",
        str(key),
        "-subject",
        "/CN=x",
        path="/.well-known/cmp/p/nosuchprofile",
    )
    assert done.returncode != 0


# ---- manual approval -------------------------------------------------------------------------


def waiting_request(server: Server, marker: str) -> str:
    """The transaction ID of the pending request whose summary names `marker` (waits up to 20 s)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        listed = json.loads(server.cli("requests", "list", "--json"))
        for pending in listed:
            if pending["state"] == "pending" and marker in pending["summary"]:
                return str(pending["transaction_id"])
        time.sleep(0.2)
    raise AssertionError(f"no request for {marker!r} reached the approval queue")


def test_manual_approval_with_polling(server: Server, work: Path) -> None:
    key = ec_key(work / "m-key.pem")
    client = subprocess.Popen(
        [
            "openssl",
            "cmp",
            "-server",
            server.url,
            "-path",
            "/.well-known/cmp/p/manual",
            "-cmd",
            "ir",
            *pbm(),
            "-newkey",
            str(key),
            "-subject",
            "/CN=manual",
            "-certout",
            str(work / "manual.pem"),
            "-verbosity",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        transaction_id = waiting_request(server, "manual")
        assert client.poll() is None, "the client should be polling"
        server.cli("requests", "approve", transaction_id)
        _out, err = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 0, err
    assert_issued(server, load(work / "manual.pem"), key, "CN=manual")


def test_manual_rejection(server: Server, work: Path) -> None:
    key = ec_key(work / "mr-key.pem")
    client = subprocess.Popen(
        [
            "openssl",
            "cmp",
            "-server",
            server.url,
            "-path",
            "/.well-known/cmp/p/manual",
            "-cmd",
            "ir",
            *pbm(),
            "-newkey",
            str(key),
            "-subject",
            "/CN=refused",
            "-certout",
            str(work / "refused.pem"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.cli("requests", "reject", waiting_request(server, "refused"), "--reason", "no")
        client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode != 0
    assert not (work / "refused.pem").exists()


# ---- restart -----------------------------------------------------------------------------------


def test_certconf_after_sigkill_restart_completes(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    subprocess.run(
        [*SANSCMP, "init", str(directory), "--pbm-ref", REF, "--pbm-secret", SECRET],
        check=True,
        capture_output=True,
    )
    server = Server(directory, _free_port())
    server.start()
    try:
        client = ClientEngine(
            ClientConfig(
                clock=lambda: datetime.now(UTC),
                random=os.urandom,
                credential=MacCredential(REF.encode(), SECRET.encode()),
            )
        )
        key = ec.generate_private_key(ec.SECP256R1())
        txn = client.ir([CertRequestSpec(key=key, subject=x509.Name.from_rfc4514_string("CN=z"))])

        def post(message: PKIMessage) -> bytes:
            request = urllib.request.Request(
                f"http://{server.url}/.well-known/cmp",
                data=message.dump(),
                headers={"Content-Type": "application/pkixcmp"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                return bytes(answer.read())

        cert_conf = txn.receive(post(txn.request))
        assert cert_conf is not None and cert_conf["body"].name == "certConf"
        server.kill()
        server.start()
        assert txn.receive(post(cert_conf)) is None
        issued = txn.result.certificates[0]
        assert record(server, issued)["status"] == "active"
    finally:
        server.stop()
