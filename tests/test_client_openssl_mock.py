"""Interop: the sans-IO client engine against the real `openssl cmp -port` mock server over HTTP.

OpenSSL's mock server binds all interfaces, so it must only ever run in a private network
namespace. Each test therefore runs this very file as a driver inside `unshare -n` (root, as in
CI) or `unshare -r -n` (unprivileged user namespaces): the driver brings `lo` up, refuses to go on
unless `lo` is the only interface, starts the mock on 127.0.0.1, drives one client transaction
over HTTP (POST application/pkixcmp to /pkix/, RFC 9811) with `urllib`, and prints what happened
as JSON. The test asserts on that JSON. The mock dies with the driver (PR_SET_PDEATHSIG) and the
driver is killed if it overruns its timeout.

The PKI (CA, server, client, the new key and the certificate the mock hands out with
`-rsp_cert`) comes from `cmp_pki` and is written to a temporary directory for both sides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openssl_netns import (
    die_with_parent,
    isolate,
    listening,
    openssl_has_cmp_mock,
    unshare_prefix,
)

PORT = 18_081  # inside a fresh network namespace, every port is free
SECRET = "sanscmp interop secret"
DRIVER_TIMEOUT = 90  # seconds for one whole scenario, mock start included
HTTP_TIMEOUT = 15

pytestmark = pytest.mark.interop


# =================================================================================================
# The driver: runs inside the private network namespace
# =================================================================================================


def _start_mock(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    command = ["openssl", "cmp", "-config", "", "-port", str(PORT), *args]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mock server exited: {log.read_text(errors='replace')}")
        if listening(PORT):
            return server
        time.sleep(0.02)
    server.kill()
    raise RuntimeError("mock server did not listen within 10 s")


def _post(der: bytes) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/pkix/",
        data=der,
        headers={"Content-Type": "application/pkixcmp"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        body: bytes = response.read()
        return body


def _drive(scenario: dict[str, Any]) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from sanscmp.engine.asn1 import PKIMessage
    from sanscmp.engine.client import (
        CertRequestSpec,
        ClientConfig,
        ClientEngine,
        RevocationSpec,
        directory_name,
    )
    from sanscmp.engine.errors import CmpError
    from sanscmp.engine.protection import MacCredential, SignatureCredential
    from sanscmp.engine.trust import TrustConfig

    files = Path(scenario["dir"])

    def cert(name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((files / f"{name}.pem").read_bytes())

    def key(name: str) -> Any:
        return serialization.load_pem_private_key((files / f"{name}.key").read_bytes(), None)

    credential: Any
    if scenario["protection"] == "pbm":
        credential = MacCredential(b"interop-client", SECRET.encode())
    elif scenario["command"] in ("kur",):
        credential = SignatureCredential(key("new"), cert("issued"))
    else:
        credential = SignatureCredential(key("client"), cert("client"))
    checks = scenario.get("reject_certificate")
    config = ClientConfig(
        clock=lambda: datetime.now(UTC),
        random=os.urandom,
        credential=credential,
        recipient=directory_name(cert("server").subject),
        trust=TrustConfig(anchors=(cert("ca"),)),
        implicit_confirm=scenario.get("implicit_confirm", False),
        accept_unprotected_errors=scenario.get("accept_unprotected_errors", False),
        check_certificate=(lambda *_: checks) if checks else None,
    )
    engine = ClientEngine(config)
    subject = x509.Name.from_rfc4514_string(scenario.get("subject", "CN=interop client"))
    command = scenario["command"]
    if command in ("ir", "cr"):
        spec = CertRequestSpec(key=key("new"), subject=subject)
        txn = engine.certificate_request(command, [spec])
    elif command == "kur":
        txn = engine.kur([CertRequestSpec(key=key("new"))], cert("issued"))
    elif command == "p10cr":
        txn = engine.p10cr((files / "csr.der").read_bytes())
    elif command == "rr":
        txn = engine.rr([RevocationSpec.of(cert("issued"), scenario.get("reason"))])
    elif command == "genm":
        txn = engine.genm([{"infoType": t} for t in scenario.get("info_types", [])])
    else:
        raise ValueError(command)

    outcome: dict[str, Any] = {"bodies": [], "waits": []}
    server = _start_mock(scenario["mock"], files / "mock.log")
    try:
        message = txn.request
        while message is not None:
            if message["body"].name == "pollReq":
                outcome["waits"].append(txn.check_after)
                time.sleep(txn.check_after)
            outcome["bodies"].append(message["body"].name)
            answer = _post(message.dump())
            outcome["bodies"].append(PKIMessage.load(answer)["body"].name)
            message = txn.receive(answer)
    except CmpError as error:
        outcome["client_error"] = f"{type(error).__name__}: {error.text}"
    finally:
        server.kill()
        server.wait(timeout=10)
    result = txn.result
    outcome.update(
        phase=str(txn.phase),
        certificates={
            str(rid): {
                "subject": c.subject.rfc4514_string(),
                "spki": c.public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .hex(),
                "serial": c.serial_number,
            }
            for rid, c in result.certificates.items()
        },
        statuses={str(k): v["status"].native for k, v in result.statuses.items()},
        fail_info=sorted(result.fail_info),
        status_text=result.status_text,
        rejected={str(k): v for k, v in result.rejected.items()},
        polls=result.polls,
        general_info=[i["infoType"].native for i in result.general_info],
        implicit_confirm_granted=result.implicit_confirm_granted,
        ca_pubs=len(result.ca_pubs),
        mock_log=(files / "mock.log").read_text(errors="replace")[-3000:],
    )
    return outcome


def _driver_main(path: str) -> None:
    scenario = json.loads(Path(path).read_text())
    isolate()
    print(json.dumps(_drive(scenario)))


# =================================================================================================
# The tests: run outside, start the driver inside a namespace
# =================================================================================================


@pytest.fixture(scope="module")
def unshare() -> list[str]:
    prefix = unshare_prefix()
    if prefix is None:
        pytest.skip("no private network namespace (unshare -n / -r -n) or no ip/openssl")
    if not openssl_has_cmp_mock():
        pytest.skip("this openssl has no `cmp` mock server")
    return prefix


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PEM files for both sides: CA, server and client credentials, the new key, its cert."""
    from cmp_pki import csr_der, name, pki
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory = tmp_path_factory.mktemp("cmp-interop")
    test_pki = pki()
    new_key = ec.generate_private_key(ec.SECP256R1())
    issued = test_pki.issue(new_key.public_key(), name("interop issued"))

    def write_cert(file: str, certificate: Any) -> None:
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        (directory / f"{file}.pem").write_bytes(pem)

    def write_key(file: str, key: Any) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (directory / f"{file}.key").write_bytes(pem)

    write_cert("ca", test_pki.ca_cert)
    write_cert("server", test_pki.server.certificate)
    write_key("server", test_pki.server.key)
    write_cert("client", test_pki.clients["ec"].certificate)
    write_key("client", test_pki.clients["ec"].key)
    write_key("new", new_key)
    write_cert("issued", issued)
    (directory / "csr.der").write_bytes(csr_der(new_key, name("interop csr")))
    return directory


def _mock_args(directory: Path, protection: str, *extra: str) -> list[str]:
    common = ["-rsp_cert", str(directory / "issued.pem"), "-rsp_capubs", str(directory / "ca.pem")]
    if protection == "pbm":
        return [*common, "-srv_secret", f"pass:{SECRET}", "-srv_ref", "interop-server", *extra]
    return [
        *common,
        "-srv_cert",
        str(directory / "server.pem"),
        "-srv_key",
        str(directory / "server.key"),
        "-srv_trusted",
        str(directory / "ca.pem"),
        *extra,
    ]


def _run(
    unshare: list[str],
    directory: Path,
    command: str,
    protection: str,
    *mock_extra: str,
    **scenario: Any,
) -> dict[str, Any]:
    spec = {
        "dir": str(directory),
        "command": command,
        "protection": protection,
        "mock": _mock_args(directory, protection, *mock_extra),
        **scenario,
    }
    spec_file = directory / f"scenario-{command}-{protection}-{time.monotonic_ns()}.json"
    spec_file.write_text(json.dumps(spec))
    env = dict(os.environ, OPENSSL_CONF="/dev/null")
    proc = subprocess.run(  # killed (with its mock: PDEATHSIG) on timeout
        [*unshare, sys.executable, __file__, "--driver", str(spec_file)],
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT,
        env=env,
        cwd=Path(__file__).parent,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    outcome: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return outcome


def _spki(directory: Path, file: str = "issued") -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((directory / f"{file}.pem").read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der.hex()


def _assert_enrolled(outcome: dict[str, Any], directory: Path, cert_req_id: int = 0) -> None:
    assert outcome.get("client_error") is None, outcome
    assert outcome["phase"] == "done", outcome
    certificate = outcome["certificates"][str(cert_req_id)]
    assert certificate["spki"] == _spki(directory)  # the key the client asked to certify
    assert certificate["subject"] == "CN=interop issued"


ENROLMENT_FLOW = ["{req}", "{rsp}", "certConf", "pkiconf"]
RESPONSE = {"ir": "ip", "cr": "cp", "kur": "kup", "p10cr": "cp"}


@pytest.mark.parametrize(
    ("command", "protection"),
    [
        ("ir", "pbm"),
        ("ir", "signature"),
        ("cr", "pbm"),
        ("cr", "signature"),
        ("p10cr", "pbm"),
        ("p10cr", "signature"),
        ("kur", "signature"),
    ],
)
def test_enrolment(unshare: list[str], pki_dir: Path, command: str, protection: str) -> None:
    outcome = _run(unshare, pki_dir, command, protection)
    _assert_enrolled(outcome, pki_dir, -1 if command == "p10cr" else 0)
    assert outcome["bodies"] == [command, RESPONSE[command], "certConf", "pkiconf"]
    assert outcome["statuses"] == {"-1" if command == "p10cr" else "0": "accepted"}
    if command == "ir":
        assert outcome["ca_pubs"] == 1


@pytest.mark.parametrize(
    ("command", "protection"),
    [
        ("ir", "pbm"),
        ("ir", "signature"),
        ("cr", "signature"),
        ("p10cr", "pbm"),
        ("p10cr", "signature"),
        ("kur", "signature"),
    ],
)
def test_enrolment_with_polling(
    unshare: list[str], pki_dir: Path, command: str, protection: str
) -> None:
    outcome = _run(unshare, pki_dir, command, protection, "-poll_count", "2", "-check_after", "0")
    _assert_enrolled(outcome, pki_dir, -1 if command == "p10cr" else 0)
    answer = RESPONSE[command]
    assert outcome["bodies"] == [
        command,
        answer,  # status waiting
        "pollReq",
        "pollRep",
        "pollReq",
        answer,
        "certConf",
        "pkiconf",
    ]
    assert outcome["polls"] == 2
    assert outcome["waits"] == [0, 0]


def test_polling_honours_check_after(unshare: list[str], pki_dir: Path) -> None:
    outcome = _run(unshare, pki_dir, "ir", "pbm", "-poll_count", "2", "-check_after", "1")
    _assert_enrolled(outcome, pki_dir)
    assert outcome["waits"] == [0, 1]  # the waiting ip says nothing; pollRep says 1 s


def test_implicit_confirm_granted(unshare: list[str], pki_dir: Path) -> None:
    outcome = _run(unshare, pki_dir, "ir", "pbm", "-grant_implicitconf", implicit_confirm=True)
    _assert_enrolled(outcome, pki_dir)
    assert outcome["implicit_confirm_granted"]
    assert outcome["bodies"] == ["ir", "ip"]


def test_implicit_confirm_not_granted(unshare: list[str], pki_dir: Path) -> None:
    outcome = _run(unshare, pki_dir, "ir", "signature", implicit_confirm=True)
    _assert_enrolled(outcome, pki_dir)
    assert not outcome["implicit_confirm_granted"]
    assert outcome["bodies"] == ["ir", "ip", "certConf", "pkiconf"]


@pytest.mark.parametrize("protection", ["pbm", "signature"])
def test_revocation(unshare: list[str], pki_dir: Path, protection: str) -> None:
    outcome = _run(unshare, pki_dir, "rr", protection, reason=1)
    assert outcome.get("client_error") is None, outcome
    assert outcome["phase"] == "done"
    assert outcome["bodies"] == ["rr", "rp"]
    assert outcome["statuses"] == {"0": "accepted"}


def test_revocation_rejected(unshare: list[str], pki_dir: Path) -> None:
    outcome = _run(
        unshare, pki_dir, "rr", "signature", "-pkistatus", "2", "-failurebits", "20", reason=4
    )
    assert outcome["phase"] == "failed"
    assert outcome["fail_info"] == ["badCertId", "badRequest"]  # bits 2 and 4


@pytest.mark.parametrize(
    ("protection", "info_type"), [("pbm", "signKeyPairTypes"), ("signature", "caCerts")]
)
def test_general_message(
    unshare: list[str], pki_dir: Path, protection: str, info_type: str
) -> None:
    # One itav per genm: OpenSSL 3.0's mock refuses more ("error processing message").
    outcome = _run(unshare, pki_dir, "genm", protection, info_types=[info_type])
    assert outcome.get("client_error") is None, outcome
    assert outcome["phase"] == "done"
    assert outcome["bodies"] == ["genm", "genp"]
    # The 3.0 mock echoes the request's itav; later versions fill in caCerts.
    assert outcome["general_info"] == [info_type]


@pytest.mark.parametrize("command", ["rr", "genm"])
def test_rr_and_genm_with_poll_count(unshare: list[str], pki_dir: Path, command: str) -> None:
    """OpenSSL 3.0's mock only delays certificate responses; 3.3+ delays rr/genm with an error
    with status waiting, which the client polls for with certReqId -1. Both must work."""
    outcome = _run(
        unshare,
        pki_dir,
        command,
        "pbm",
        "-poll_count",
        "2",
        "-check_after",
        "0",
        reason=1,
        info_types=["signKeyPairTypes"],
    )
    assert outcome.get("client_error") is None, outcome
    assert outcome["phase"] == "done"
    final = {"rr": "rp", "genm": "genp"}[command]
    assert outcome["bodies"][-1] == final
    if outcome["polls"]:
        assert outcome["bodies"][:3] == [command, "error", "pollReq"]


def test_server_rejects(unshare: list[str], pki_dir: Path) -> None:
    outcome = _run(
        unshare, pki_dir, "ir", "pbm", "-pkistatus", "2", "-failure", "9", "-statusstring", "no"
    )
    assert outcome["phase"] == "failed"
    assert outcome["bodies"] == ["ir", "ip"]
    assert outcome["fail_info"] == ["badPOP"]
    assert outcome["status_text"] == ["no"]


def test_server_error_message(unshare: list[str], pki_dir: Path) -> None:
    outcome = _run(unshare, pki_dir, "cr", "signature", "-send_error")
    assert outcome["phase"] == "failed"
    assert outcome["bodies"] == ["cr", "error"]
    assert outcome["fail_info"]


def test_unprotected_error_needs_accept_unprotected_errors(
    unshare: list[str], pki_dir: Path
) -> None:
    refused = _run(unshare, pki_dir, "ir", "pbm", "-send_error", "-send_unprot_err")
    assert refused["phase"] == "failed"
    assert refused["client_error"].startswith("BadMessageCheck")
    accepted = _run(
        unshare,
        pki_dir,
        "ir",
        "pbm",
        "-send_error",
        "-send_unprot_err",
        accept_unprotected_errors=True,
    )
    assert accepted["phase"] == "failed"
    assert accepted.get("client_error") is None
    assert accepted["fail_info"]


def test_client_rejects_the_certificate(unshare: list[str], pki_dir: Path) -> None:
    outcome = _run(unshare, pki_dir, "ir", "pbm", reject_certificate="not what I asked for")
    assert outcome.get("client_error") is None, outcome
    assert outcome["bodies"] == ["ir", "ip", "certConf", "pkiconf"]
    assert outcome["phase"] == "failed"
    assert outcome["rejected"] == {"0": "not what I asked for"}
    assert outcome["certificates"] == {}


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--driver":
    _driver_main(sys.argv[2])
