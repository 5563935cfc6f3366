"""Fuzz the server engine: arbitrary bytes into `CmpServer.process_request`.

    python fuzz/fuzz_server.py -max_total_time=45 -rss_limit_mb=2048     # from the repo root
    python fuzz/fuzz_server.py crash-<sha1>                              # replay one input

The only acceptable outcome of any input is a well-formed CMP response: a `PKIMessage` whose DER
decodes again with the strict `PKIMessage.load` to the same bytes, whose body is a response type,
with pvno 2 or 3, and which carries the request's transactionID and (as recipNonce) senderNonce
whenever those can be recovered from the request's header. Any exception escaping
`process_request`, or a response breaking one of those rules, is a finding.

Input layout: the first byte selects server options (one bit each: accept unprotected, accept
raVerified, grant implicitConfirm, send unprotected errors, defer certificate requests, defer
rr/genm/certConf, reject certReqId 1 and refuse certConf, leave rr/genm unsupported); the rest is
one or more requests separated by `SEPARATOR`, handed in turn to one fresh server (fixed clock,
seeded randomness: every run of an input is the same). The server trusts the OpenSSL fixtures'
CA and knows their shared secret, and messageTime is not checked, so the seeds — every message
of tests/fixtures/openssl, alone and as whole transactions — get past protection and into the
handlers. Seeds are copied to fuzz/corpus-work/server/ (gitignored), the corpus directory used
when none is given on the command line.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "openssl"
CORPUS = REPO / "fuzz" / "corpus-work" / "server"
SEPARATOR = b"\xffNEXT\xff"
FIXTURE_SECRET = b"sanscmp-fixture-secret"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
RESPONSE_BODIES = frozenset({"ip", "cp", "kup", "rp", "genp", "pkiconf", "pollRep", "error"})

sys.path.insert(0, str(REPO / "tests"))  # cmp_pki: the shared test PKI and issuing handlers

with atheris.instrument_imports(include=["sanscmp", "asn1crypto"]):
    from asn1crypto.x509 import GeneralName, Name
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from sanscmp.engine.asn1 import PKIMessage, recover_header
    from sanscmp.engine.authentication import ProtectionPolicy
    from sanscmp.engine.checks import HeaderPolicy
    from sanscmp.engine.handlers import CmpServer
    from sanscmp.engine.protection import SignatureCredential
    from sanscmp.engine.server import ServerConfig, ServerOptions
    from sanscmp.engine.trust import TrustConfig

from cmp_pki import DeterministicRandom, IssuingCA  # noqa: E402  (after sys.path)


class Clock:
    def now(self) -> datetime:
        return NOW


class AnySecret:
    """Every senderKID shares the fixtures' secret."""

    def secret_for(self, sender_kid: bytes | None) -> bytes | None:
        return FIXTURE_SECRET


def _server_identity() -> tuple[SignatureCredential, GeneralName]:
    key = ec.derive_private_key(0x5A45C4D, ec.SECP256R1())  # fixed: inputs replay identically
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sanscmp fuzz server")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    name = GeneralName(name="directory_name", value=Name.load(subject.public_bytes()))
    return SignatureCredential(key, cert), name


CREDENTIAL, SERVER_NAME = _server_identity()
TRUST = TrustConfig(
    anchors=tuple(
        x509.load_pem_x509_certificate(path.read_bytes()) for path in FIXTURES.glob("ca.pem")
    )
)


def make_server(options_byte: int) -> CmpServer:
    """A fresh server; each bit of `options_byte` switches one option or handler behaviour."""
    bit = [bool(options_byte >> i & 1) for i in range(8)]
    random = DeterministicRandom(b"fuzz-server")
    policy = ProtectionPolicy(
        random=random, mac_secrets=AnySecret(), trust=TRUST, credential=CREDENTIAL
    )
    options = ServerOptions(
        accept_unprotected=bit[0],
        accept_raverified=bit[1],
        grant_implicit_confirm=bit[2],
        send_unprotected_errors=bit[3],
        header=HeaderPolicy(max_time_skew=None),
    )
    defer = ({"cert"} if bit[4] else set()) | ({"rr", "genm", "certConf"} if bit[5] else set())
    ca = IssuingCA(
        defer_kinds=frozenset(defer),
        polls=1,
        check_after=0,
        reject_ids=frozenset({1}) if bit[6] else frozenset(),
        accept_confirm=not bit[6],
    )
    server = CmpServer(
        ServerConfig(
            name=SERVER_NAME, clock=Clock(), random=random, authenticator=policy, options=options
        )
    )
    unsupported = {"process_rr": False, "process_genm": False} if bit[7] else {}
    server.init(ca, ca.handlers(**unsupported))
    return server


def check_response(request: bytes, response: object) -> None:
    """The invariants every answer must keep (see the module docstring)."""
    if not isinstance(response, PKIMessage):
        raise AssertionError(f"process_request returned {type(response).__name__}")
    der = response.dump()
    again = PKIMessage.load(der)  # DecodeError here: the server emitted a malformed message
    if again.dump() != der:
        raise AssertionError("response does not re-encode to the same DER")
    body = again["body"].name
    if body not in RESPONSE_BODIES:
        raise AssertionError(f"response body {body} is not a response type")
    header = again["header"]
    if header["pvno"].native not in (2, 3):
        raise AssertionError(f"response pvno {header['pvno'].native}")
    recovered = recover_header(request)
    if recovered is None:
        return
    tid = recovered["transactionID"].native
    if tid is not None and header["transactionID"].native != tid:
        raise AssertionError("response lost the request's transactionID")
    nonce = recovered["senderNonce"].native
    if nonce is not None and header["recipNonce"].native != nonce:
        raise AssertionError("response recipNonce is not the request's senderNonce")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    server = make_server(data[0])
    for request in data[1:].split(SEPARATOR)[:4]:
        response = server.process_request(request)
        check_response(request, response)


def seed_corpus() -> None:
    """Copy every fixture message, and every fixture transaction, into the work corpus."""
    CORPUS.mkdir(parents=True, exist_ok=True)
    transactions: dict[str, list[Path]] = {}
    for path in sorted(FIXTURES.glob("*.der")):
        for options in (0x00, 0x07, 0x10):
            target = CORPUS / f"{path.stem}.opt{options:02x}"
            if not target.exists():
                target.write_bytes(bytes([options]) + path.read_bytes())
        if ".req" in path.name:
            transactions.setdefault(path.name.split(".")[0], []).append(path)
    for scenario, requests in transactions.items():
        target = CORPUS / f"{scenario}.transaction"
        if len(requests) > 1 and not target.exists():
            target.write_bytes(b"\x00" + SEPARATOR.join(p.read_bytes() for p in requests))


def main() -> None:
    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        seed_corpus()
        argv.append(str(CORPUS))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
