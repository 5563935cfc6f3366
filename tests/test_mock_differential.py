"""Differential: the same `openssl cmp` client commands against OpenSSL's mock server and against
`sanscmp mock` with the same options give the same outcome.

Compared per client command: exit status, the message flow the client logs ("sending IR",
"received IP", ...), the certificate it saved (-certout), and the PKIStatus / failInfo it reports
for negative answers. Everything runs in one private network namespace (OpenSSL's mock binds every
interface): this file re-runs itself there as a driver that starts each server with each option
set in turn (`-compat 3.0` for ours: the system's OpenSSL is 3.0), runs the client commands
against it, and prints the outcomes as JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
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

pytestmark = pytest.mark.interop

PORT = 18_090
SECRET = "pass:differential secret"
PBM_SERVER = ["-srv_ref", "mock-server", "-srv_secret", SECRET]
SIG_SERVER = ["-srv_cert", "server.pem", "-srv_key", "server.key", "-srv_trusted", "ca.pem"]
RESPONSES = ["-rsp_cert", "issued.pem", "-rsp_capubs", "ca.pem", "-rsp_extracerts", "ca.pem"]
PBM = ["-ref", "client", "-secret", SECRET]
SIG = ["-cert", "client.pem", "-key", "client.key", "-trusted", "ca.pem"]
ENROL = ["-newkey", "new.key", "-subject", "/CN=differential"]
READ_ERRORS = ["-unprotected_errors"]

# (name, server options, {client command name: client options})
SCENARIOS: list[tuple[str, list[str], dict[str, list[str]]]] = [
    (
        "pbm",
        [*PBM_SERVER, *RESPONSES],
        {
            "ir": ["-cmd", "ir", *PBM, *ENROL],
            "ir-implicit-not-granted": ["-cmd", "ir", *PBM, *ENROL, "-implicit_confirm"],
            "cr": ["-cmd", "cr", *PBM, *ENROL],
            "p10cr": ["-cmd", "p10cr", *PBM, "-csr", "csr.pem"],
            "rr": ["-cmd", "rr", *PBM, "-oldcert", "issued.pem", "-revreason", "1"],
            "rr-other-cert": ["-cmd", "rr", *PBM, "-oldcert", "client.pem", *READ_ERRORS],
            "genm": ["-cmd", "genm", *PBM],
            "genm-infotype": ["-cmd", "genm", *PBM, "-infotype", "signKeyPairTypes"],
            "wrong-secret": ["-cmd", "ir", "-ref", "client", "-secret", "pass:no", *ENROL],
            "unprotected-refused": ["-cmd", "ir", "-unprotected_requests", *ENROL, *READ_ERRORS],
            "raverified-refused": ["-cmd", "ir", *PBM, *ENROL, "-popo", "0", *READ_ERRORS],
        },
    ),
    (
        "signature",
        [*SIG_SERVER, *RESPONSES],
        {
            "ir": ["-cmd", "ir", *SIG, *ENROL],
            "cr": ["-cmd", "cr", *SIG, *ENROL],
            "kur": ["-cmd", "kur", "-cert", "issued.pem", "-key", "new.key", "-trusted", "ca.pem"],
            "rr": ["-cmd", "rr", *SIG, "-oldcert", "issued.pem"],
            "genm": ["-cmd", "genm", *SIG],
            "untrusted-server": ["-cmd", "ir", *SIG[:4], "-trusted", "client.pem", *ENROL],
        },
    ),
    (
        "polling",
        [*PBM_SERVER, *RESPONSES, "-poll_count", "2", "-check_after", "1"],
        {
            "ir": ["-cmd", "ir", *PBM, *ENROL],
            "cr": ["-cmd", "cr", *PBM, *ENROL],
            "p10cr": ["-cmd", "p10cr", *PBM, "-csr", "csr.pem"],
            "rr-not-delayed": ["-cmd", "rr", *PBM, "-oldcert", "issued.pem"],
            "genm-not-delayed": ["-cmd", "genm", *PBM],
        },
    ),
    (
        "implicit-confirm",
        [*PBM_SERVER, *RESPONSES, "-grant_implicitconf"],
        {
            "ir-implicit": ["-cmd", "ir", *PBM, *ENROL, "-implicit_confirm"],
            "ir-explicit": ["-cmd", "ir", *PBM, *ENROL],
        },
    ),
    (
        "send-error",
        [*PBM_SERVER, *RESPONSES, "-send_error"],
        {
            "ir": ["-cmd", "ir", *PBM, *ENROL],
            "rr": ["-cmd", "rr", *PBM, "-oldcert", "issued.pem"],
            "genm": ["-cmd", "genm", *PBM],
        },
    ),
    (
        "rejection",
        [*PBM_SERVER, *RESPONSES, "-pkistatus", "2", "-failure", "9", "-statusstring", "no way"],
        {
            "ir": ["-cmd", "ir", *PBM, *ENROL],
            "rr": ["-cmd", "rr", *PBM, "-oldcert", "issued.pem"],
        },
    ),
    (
        "rejection-unprotected",
        [*PBM_SERVER, *RESPONSES, "-pkistatus", "2", "-failurebits", "1028", "-send_unprot_err"],
        {
            "ir": ["-cmd", "ir", *PBM, *ENROL, *READ_ERRORS],
            "ir-strict": ["-cmd", "ir", *PBM, *ENROL],
        },
    ),
    (
        "granted-with-mods",
        [*PBM_SERVER, *RESPONSES, "-pkistatus", "1", "-statusstring", "changed"],
        {"ir": ["-cmd", "ir", *PBM, *ENROL]},
    ),
    (
        "lenient",
        [*PBM_SERVER, *RESPONSES, "-accept_unprotected", "-accept_raverified"],
        {
            "ir-unprotected": ["-cmd", "ir", "-unprotected_requests", *ENROL],
            "ir-raverified": ["-cmd", "ir", *PBM, *ENROL, "-popo", "0"],
        },
    ),
    (
        "max-msgs",
        [*PBM_SERVER, *RESPONSES, "-max_msgs", "2"],
        {
            "ir": ["-cmd", "ir", *PBM, *ENROL],
            "genm-after-the-last-message": ["-cmd", "genm", *PBM, "-msg_timeout", "5"],
        },
    ),
    (
        "send-unprotected",
        [*PBM_SERVER, *RESPONSES, "-send_unprotected"],
        {"ir": ["-cmd", "ir", *PBM, *ENROL]},
    ),
]

CASES = [(name, command) for name, _, commands in SCENARIOS for command in commands]

# Failures found by the engine's generic checks, before any mock callback: OpenSSL answers every
# one of them with badRequest, sanscmp with the bit RFC 9810 / RFC 9483 name for the cause.
PRECISE_BITS = {("pbm", "unprotected-refused"): ["badMessageCheck"]}
STATUS = re.compile(
    r"\b(accepted|grantedWithMods|rejection|waiting|revocationWarning|revocationNotification"
    r"|keyUpdateWarning)\b"
)
FAIL_INFO = re.compile(r"PKIFailureInfo: ([\w, ]+)")
FLOW = re.compile(r"CMP info: (sending|received) (\w+)")


# =================================================================================================
# The driver: runs inside the private network namespace
# =================================================================================================


def _start(server: str, options: list[str], directory: Path) -> subprocess.Popen[bytes]:
    if server == "openssl":
        command = ["openssl", "cmp", "-config", "", "-port", str(PORT), *options]
    else:
        command = [sys.executable, "-m", "sanscmp.app.cli", "mock", "-port", str(PORT)]
        command += ["-compat", "3.0", *options]
    log = (directory / f"{server}.log").open("ab")
    process = subprocess.Popen(
        command, cwd=directory, stdout=log, stderr=log, preexec_fn=die_with_parent
    )
    deadline = time.monotonic() + 20
    while not listening(PORT):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError((directory / f"{server}.log").read_text(errors="replace"))
        time.sleep(0.02)
    return process


def _client(options: list[str], directory: Path) -> dict[str, Any]:
    certout = directory / "out.pem"
    certout.unlink(missing_ok=True)
    command = ["openssl", "cmp", "-config", "", "-server", f"127.0.0.1:{PORT}", "-path", "pkix/"]
    command += ["-recipient", "/CN=differential", "-certout", "out.pem", *options]
    run = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=60)
    log = run.stdout + run.stderr
    reported = [line for line in log.splitlines() if "PKIStatus" in line or "status" in line]
    return {
        "exit": run.returncode,
        "flow": [f"{verb} {body}" for verb, body in FLOW.findall(log)],
        "certificate": certout.read_text() if certout.exists() else None,
        "status": sorted({s for line in reported for s in STATUS.findall(line)}),
        "fail_info": sorted(
            {bit.strip() for found in FAIL_INFO.findall(log) for bit in found.split(",")}
        ),
        "log": log[-1500:],
    }


def _drive(directory: Path) -> dict[str, Any]:
    outcomes: dict[str, Any] = {}
    for name, options, commands in SCENARIOS:
        for server in ("openssl", "sanscmp"):
            process = _start(server, options, directory)
            try:
                for command, client_options in commands.items():
                    outcomes[f"{name}/{command}/{server}"] = _client(client_options, directory)
            finally:
                process.kill()
                process.wait(timeout=10)
    return outcomes


# =================================================================================================
# The tests
# =================================================================================================


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    prefix = unshare_prefix()
    if prefix is None or not openssl_has_cmp_mock():
        pytest.skip("no private network namespace or no `openssl cmp` mock server")
    directory = _write_pki(tmp_path_factory.mktemp("differential"))
    run = subprocess.run(
        [*prefix, sys.executable, __file__, "--driver", str(directory)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def _write_pki(directory: Path) -> Path:
    from cmp_pki import csr_der, name, pki
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    test_pki = pki()
    new_key = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM

    def key(file: str, value: Any) -> None:
        raw = value.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / file).write_bytes(raw)

    (directory / "ca.pem").write_bytes(test_pki.ca_cert.public_bytes(pem))
    (directory / "server.pem").write_bytes(test_pki.server.certificate.public_bytes(pem))
    key("server.key", test_pki.server.key)
    (directory / "client.pem").write_bytes(test_pki.clients["ec"].certificate.public_bytes(pem))
    key("client.key", test_pki.clients["ec"].key)
    key("new.key", new_key)
    issued = test_pki.issue(new_key.public_key(), name("differential issued"))
    (directory / "issued.pem").write_bytes(issued.public_bytes(pem))
    csr = x509.load_der_x509_csr(csr_der(new_key, name("differential csr")))
    (directory / "csr.pem").write_bytes(csr.public_bytes(pem))
    return directory


@pytest.mark.parametrize(("scenario", "command"), CASES)
def test_same_outcome_as_openssl_mock(
    outcomes: dict[str, Any], scenario: str, command: str
) -> None:
    theirs = outcomes[f"{scenario}/{command}/openssl"]
    ours = outcomes[f"{scenario}/{command}/sanscmp"]
    for aspect in ("exit", "flow", "certificate", "status", "fail_info"):
        if aspect == "fail_info" and (scenario, command) in PRECISE_BITS:
            assert theirs[aspect] == ["badRequest"], theirs["log"]
            assert ours[aspect] == PRECISE_BITS[scenario, command], ours["log"]
            continue
        assert ours[aspect] == theirs[aspect], (aspect, theirs["log"], ours["log"])


def test_the_scenarios_cover_success_and_failure(outcomes: dict[str, Any]) -> None:
    """Guard against a vacuous comparison: both kinds of outcome really occur."""
    exits = {outcomes[f"{s}/{c}/openssl"]["exit"] for s, c in CASES}
    assert exits == {0, 1}
    assert outcomes["pbm/ir/openssl"]["certificate"]
    assert "received POLLREP" in outcomes["polling/ir/openssl"]["flow"]
    assert outcomes["rejection/ir/openssl"]["fail_info"]


if __name__ == "__main__" and sys.argv[1:2] == ["--driver"]:
    isolate()
    print(json.dumps(_drive(Path(sys.argv[2]))))
