"""A tiny in-memory test PKI for server-engine tests; any test may `from cmp_pki import ...`.

- `pki()`: one CA (EC P-256) with a server certificate and client certificates (`ec`, `rsa`,
  `other`), and shared secrets for MAC clients; built once per test session.
- `FixedClock`: the engine's clock (`.now()`) and the client's (`clock()`), moved by `advance`.
- `DeterministicRandom`: a seeded byte stream; give server and clients different seeds.
- `IssuingCA`: an OpenSSL-style handler set that issues from the request, with knobs to reject,
  defer (delayed delivery), refuse certConf and fail; it records everything it did per transaction.
- `make_server` / `make_client`: a `CmpServer` and a `ClientEngine` wired to this PKI.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto.core import Null
from asn1crypto.keys import PublicKeyInfo
from asn1crypto.x509 import Certificate as AsnCertificate
from asn1crypto.x509 import GeneralName
from asn1crypto.x509 import Name as AsnName
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from cryptography.x509.oid import NameOID

from sanscmp.engine.asn1 import (
    CertReqMsg,
    CertRequest,
    InfoTypeAndValue,
    PKIBody,
    PKIHeader,
    PKIMessage,
    PKIStatusInfo,
    ProofOfPossession,
)
from sanscmp.engine.authentication import ProtectionPolicy
from sanscmp.engine.client import (
    CertRequestSpec,
    ClientConfig,
    ClientEngine,
    ClientResult,
    ClientTransaction,
)
from sanscmp.engine.errors import FailInfo
from sanscmp.engine.events import (
    Defer,
    Issue,
    Reject,
    Revoked,
    TransactionExpired,
)
from sanscmp.engine.handlers import CmpServer, Handlers
from sanscmp.engine.popo import (
    central_keygen_requested,
    p10cr_central_keygen_requested,
    template_public_key,
)
from sanscmp.engine.protection import MacCredential, SignatureCredential, protect
from sanscmp.engine.server import ServerConfig, ServerOptions
from sanscmp.engine.transfer import run, server_perform
from sanscmp.engine.trust import TrustConfig

START = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
SECRETS = {b"client-1": b"first shared secret", b"client-2": b"second shared secret"}


# ---- time and randomness ----------------------------------------------------------------------


class FixedClock:
    """Time stands still until `advance`; both the engine's `Clock` and the client's callable."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class DeterministicRandom:
    """`random(n)`: n bytes of SHA-256 counter-mode output over `seed`; same seed, same bytes."""

    def __init__(self, seed: bytes | str = b"sanscmp") -> None:
        self.seed = seed.encode() if isinstance(seed, str) else seed
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.counter += 1
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
        return out[:n]


# ---- the PKI ------------------------------------------------------------------------------------


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def general_name(subject: x509.Name) -> GeneralName:
    """The asn1crypto directoryName GeneralName of a `cryptography` Name."""
    return GeneralName(name="directory_name", value=AsnName.load(subject.public_bytes()))


def asn1_certificate(certificate: x509.Certificate) -> AsnCertificate:
    return AsnCertificate.load(certificate.public_bytes(Encoding.DER))


@dataclass(frozen=True)
class Identity:
    """A key and its certificate (issued by the test CA)."""

    key: Any
    certificate: x509.Certificate

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject


class TestPki:
    """The CA, the server's identity, client identities and shared secrets."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = name("sanscmp test CA")
        self.ca_cert = self._build(
            self.ca_name, self.ca_key.public_key(), serial=1, ca=True, issuer_key=self.ca_key
        )
        self._serial = 100
        self.server = self._identity("sanscmp test server", ec.generate_private_key(ec.SECP256R1()))
        self.clients = {
            "ec": self._identity("client ec", ec.generate_private_key(ec.SECP256R1())),
            "rsa": self._identity("client rsa", rsa.generate_private_key(65537, 2048)),
            "other": self._identity("client other", ec.generate_private_key(ec.SECP256R1())),
        }
        self.secrets = dict(SECRETS)

    def _identity(self, common_name: str, key: Any) -> Identity:
        return Identity(key, self.issue(key.public_key(), name(common_name)))

    def _build(
        self,
        subject: x509.Name,
        public_key: Any,
        *,
        serial: int,
        ca: bool = False,
        issuer_key: Any = None,
        not_after: datetime | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_name)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(START - timedelta(days=365))
            .not_valid_after(not_after or START + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        if ca:
            usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
        else:
            usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        builder = builder.add_extension(usage, critical=True)
        return builder.sign(issuer_key or self.ca_key, hashes.SHA256())

    def issue(self, public_key: Any, subject: x509.Name) -> x509.Certificate:
        """A fresh end-entity certificate from the CA (serial numbers count up from 100)."""
        self._serial += 1
        return self._build(subject, public_key, serial=self._serial)

    @property
    def trust(self) -> TrustConfig:
        return TrustConfig(anchors=(self.ca_cert,))


@functools.cache
def pki() -> TestPki:
    """The session's test PKI (keys are made once: RSA generation is slow)."""
    return TestPki()


class SecretTable:
    """`MacSecrets` over a dict senderKID -> secret."""

    def __init__(self, secrets: dict[bytes, bytes]) -> None:
        self.secrets = secrets

    def secret_for(self, sender_kid: bytes | None) -> bytes | None:
        return self.secrets.get(sender_kid) if sender_kid is not None else None


def csr_der(key: Any, subject: x509.Name) -> bytes:
    """A PKCS#10 request signed with `key`."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(Encoding.DER)


def cert_request(common_name: str = "enrolled", key: Any = None) -> CertRequestSpec:
    """One certificate request with a fresh EC key (signature POPO)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    return CertRequestSpec(key=key, subject=name(common_name))


# ---- the issuing handler set --------------------------------------------------------------------


def _x509_name(asn1_name: AsnName) -> x509.Name:
    attributes = []
    for rdn in asn1_name.chosen:
        for ava in rdn:
            value = ava["value"].native
            attributes.append(x509.NameAttribute(x509.ObjectIdentifier(ava["type"].dotted), value))
    return x509.Name(attributes)


@dataclass
class IssuingCA:
    """OpenSSL-style callbacks issuing with `pki`, recording what happens per transactionID.

    Knobs: `defer_kinds` ("cert", "rr", "genm", "certConf") are deferred on first sight and
    answered after `polls` pollReq messages got a pollRep; `reject_ids` are certReqIds refused
    with badCertTemplate; `accept_confirm` False refuses every certConf; `fail_with` makes the cert
    request callback raise. `central_keygen` says what a central key generation request gets:
    None a badCertTemplate rejection, "ec" a fresh EC P-256 key (kept in `generated`), "omit" a
    certificate without its key, "mismatch" a key of another certificate.
    """

    pki: TestPki = field(default_factory=pki)
    defer_kinds: frozenset[str] = frozenset()
    polls: int = 0
    check_after: int = 5
    reject_ids: frozenset[int] = frozenset()
    accept_confirm: bool = True
    fail_with: Exception | None = None
    central_keygen: str | None = None
    generated: dict[bytes, dict[int, Any]] = field(default_factory=dict)
    issued: dict[bytes, dict[int, x509.Certificate]] = field(default_factory=dict)
    confirmed: list[tuple[bytes, int]] = field(default_factory=list)
    revoked: list[int] = field(default_factory=list)
    errors: list[tuple[bytes, PKIStatusInfo]] = field(default_factory=list)
    cleaned: list[bytes] = field(default_factory=list)
    expired: list[TransactionExpired] = field(default_factory=list)
    calls: list[tuple[str, bytes]] = field(default_factory=list)
    _deferred: set[tuple[bytes, str]] = field(default_factory=set)
    _remaining: dict[bytes, int] = field(default_factory=dict)
    _last_poll: dict[bytes, bytes] = field(default_factory=dict)

    def handlers(self, **without: bool) -> Handlers:
        """All callbacks; `handlers(process_rr=False)` leaves that one out (unsupported)."""
        every = {
            "process_cert_request": self.process_cert_request,
            "process_rr": self.process_rr,
            "process_genm": self.process_genm,
            "process_error": self.process_error,
            "process_certConf": self.process_certConf,
            "process_pollReq": self.process_pollReq,
            "clean_transaction": self.clean_transaction,
            "transaction_expired": self.transaction_expired,
        }
        return Handlers(**{k: v for k, v in every.items() if without.get(k, True)})

    # -- delayed delivery

    def _defer(self, request: PKIMessage, kind: str) -> Defer | None:
        tid = request["header"]["transactionID"].native
        if kind not in self.defer_kinds or (tid, kind) in self._deferred:
            return None
        self._deferred.add((tid, kind))
        self._remaining[tid] = self.polls
        return Defer(self.check_after, f"{kind} in progress")

    def process_pollReq(self, server: CmpServer, request: PKIMessage, cert_req_id: int) -> Any:
        tid = request["header"]["transactionID"].native
        self.calls.append(("pollReq", tid))
        nonce = request["header"]["senderNonce"].native
        if self._last_poll.get(tid) != nonce:  # count messages, not entries
            self._last_poll[tid] = nonce
            if self._remaining.get(tid, 0) > 0:
                self._remaining[tid] -= 1
                return False, self.check_after
            self._remaining[tid] = -1  # ready: every entry of this message is ready
        return self._remaining[tid] < 0, self.check_after

    # -- the six callbacks

    def process_cert_request(
        self,
        server: CmpServer,
        request: PKIMessage,
        cert_req_id: int,
        crm: CertReqMsg | None,
        p10cr: Any,
    ) -> Issue | Reject | Defer:
        tid = request["header"]["transactionID"].native
        self.calls.append(("cert", tid))
        if self.fail_with is not None:
            raise self.fail_with
        deferred = self._defer(request, "cert")
        if deferred is not None:
            return deferred
        if cert_req_id in self.reject_ids:
            return Reject(FailInfo.badCertTemplate, f"certReqId {cert_req_id} refused")
        already = self.issued.get(tid, {}).get(cert_req_id)
        central = (
            central_keygen_requested(crm)
            if crm is not None
            else p10cr_central_keygen_requested(p10cr)
        )
        if central:
            return self._central_keygen(tid, cert_req_id, crm, p10cr, already)
        if already is not None:
            return Issue(already, chain=(self.pki.ca_cert,))
        if crm is not None:
            spki = template_public_key(crm)
            assert spki is not None
            public_key = load_der_public_key(spki)
            subject = _x509_name(crm["certReq"]["certTemplate"]["subject"])
        else:
            csr = x509.load_der_x509_csr(p10cr.dump())
            public_key, subject = csr.public_key(), csr.subject
        certificate = self.pki.issue(public_key, subject)
        self.issued.setdefault(tid, {})[cert_req_id] = certificate
        return Issue(certificate, chain=(self.pki.ca_cert,), ca_pubs=(self.pki.ca_cert,))

    def _central_keygen(
        self,
        tid: bytes,
        cert_req_id: int,
        crm: CertReqMsg | None,
        p10cr: Any,
        already: x509.Certificate | None,
    ) -> Issue | Reject:
        """The answer to a central key generation request, as the `central_keygen` knob says."""
        if self.central_keygen is None:
            return Reject(FailInfo.badCertTemplate, "central key generation not supported")
        key = self.generated.get(tid, {}).get(cert_req_id)
        if key is None:
            key = ec.generate_private_key(ec.SECP256R1())
            self.generated.setdefault(tid, {})[cert_req_id] = key
        if already is None:
            if crm is not None:
                subject = _x509_name(crm["certReq"]["certTemplate"]["subject"])
            else:
                subject = _x509_name(p10cr["certification_request_info"]["subject"])
            already = self.pki.issue(key.public_key(), subject)
            self.issued.setdefault(tid, {})[cert_req_id] = already
        sent = {
            "ec": key,
            "omit": None,
            "mismatch": ec.generate_private_key(ec.SECP256R1()),
        }[self.central_keygen]
        return Issue(already, chain=(self.pki.ca_cert,), private_key=sent)

    def process_rr(self, server: CmpServer, request: PKIMessage, issuer: Any, serial: Any) -> Any:
        tid = request["header"]["transactionID"].native
        self.calls.append(("rr", tid))
        deferred = self._defer(request, "rr")
        if deferred is not None:
            return deferred
        known = {c.serial_number for certs in self.issued.values() for c in certs.values()}
        if serial in known and serial not in self.revoked:
            self.revoked.append(serial)
            return Revoked()
        return Reject(FailInfo.badCertId, f"no certificate with serial {serial} to revoke")

    def process_genm(
        self, server: CmpServer, request: PKIMessage, items: Sequence[InfoTypeAndValue]
    ) -> Any:
        tid = request["header"]["transactionID"].native
        self.calls.append(("genm", tid))
        deferred = self._defer(request, "genm")
        if deferred is not None:
            return deferred
        answers = []
        for item in items:
            if item["infoType"].native == "caCerts":
                answers.append(
                    InfoTypeAndValue(
                        {"infoType": "caCerts", "infoValue": [asn1_certificate(self.pki.ca_cert)]}
                    )
                )
        return answers

    def process_error(
        self, server: CmpServer, request: PKIMessage, info: PKIStatusInfo, code: Any, details: Any
    ) -> None:
        tid = request["header"]["transactionID"].native
        self.calls.append(("error", tid))
        self.errors.append((tid, info))

    def process_certConf(
        self, server: CmpServer, request: PKIMessage, cert_req_id: int, cert_hash: bytes, info: Any
    ) -> bool | Defer:
        tid = request["header"]["transactionID"].native
        self.calls.append(("certConf", tid))
        deferred = self._defer(request, "certConf")
        if deferred is not None:
            return deferred
        if self.accept_confirm:
            self.confirmed.append((tid, cert_req_id))
        return self.accept_confirm

    def clean_transaction(self, server: CmpServer, transaction_id: bytes) -> None:
        self.cleaned.append(transaction_id)

    def transaction_expired(self, server: CmpServer, event: TransactionExpired) -> None:
        self.expired.append(event)
        for certificate in event.unconfirmed:  # e.g. revoke what was never confirmed
            self.revoked.append(certificate.serial_number)


# ---- servers and clients ------------------------------------------------------------------------


def server_credential(test_pki: TestPki | None = None) -> SignatureCredential:
    test_pki = test_pki or pki()
    return SignatureCredential(
        test_pki.server.key, test_pki.server.certificate, chain=(test_pki.ca_cert,)
    )


def make_server(
    ca: IssuingCA | None = None,
    *,
    clock: FixedClock | None = None,
    seed: bytes | str = b"server",
    options: ServerOptions | None = None,
    signs: bool = True,
    fallback_mac: MacCredential | None = None,
    custom_ctx: Any = None,
    handlers: Handlers | None = None,
) -> CmpServer:
    """A `CmpServer` for the test PKI: MAC secrets, trust in the CA, signing with the server key
    (unless `signs` is False), driven by `ca` (a fresh `IssuingCA` by default)."""
    test_pki = pki()
    ca = ca or IssuingCA(test_pki)
    clock = clock or FixedClock()
    random = DeterministicRandom(seed)
    policy = ProtectionPolicy(
        random=random,
        mac_secrets=SecretTable(test_pki.secrets),
        trust=test_pki.trust,
        credential=server_credential(test_pki) if signs else None,
        fallback_mac=fallback_mac,
    )
    config = ServerConfig(
        name=general_name(test_pki.server.name),
        clock=clock,
        random=random,
        authenticator=policy,
        options=options or ServerOptions(),
    )
    server = CmpServer(config)
    server.init(custom_ctx if custom_ctx is not None else ca, handlers or ca.handlers())
    return server


def make_client(
    kind: str = "mac",
    *,
    clock: FixedClock | None = None,
    seed: bytes | str = b"client",
    reference: bytes = b"client-1",
    secret: bytes | None = None,
    **config: Any,
) -> ClientEngine:
    """A client engine: `kind` "mac" (PBM with `reference`), "ec" / "rsa" / "other" (signature
    with that client certificate) or "none" (unprotected)."""
    test_pki = pki()
    credential: MacCredential | SignatureCredential | None
    if kind == "mac":
        credential = MacCredential(reference, secret or test_pki.secrets[reference])
    elif kind == "none":
        credential = None
    else:
        identity = test_pki.clients[kind]
        credential = SignatureCredential(identity.key, identity.certificate)
    config.setdefault("recipient", general_name(test_pki.server.name))
    config.setdefault("trust", test_pki.trust)
    return ClientEngine(
        ClientConfig(
            clock=clock or FixedClock(),
            random=DeterministicRandom(seed),
            credential=credential,
            **config,
        )
    )


def perform(server: CmpServer, transaction: ClientTransaction) -> ClientResult:
    """Run a client transaction to its end against `server` in process."""
    return run(transaction, server_perform(server))


def exchange(server: CmpServer, message: PKIMessage) -> PKIMessage:
    """One request through the server as DER, the response re-parsed as a client would."""
    return PKIMessage.load(server.process_request(message.dump()).dump())


def fail_info(response: PKIMessage) -> set[str]:
    """failInfo bit names of an error message (empty for any other body)."""
    body = response["body"]
    if body.name != "error":
        return set()
    bits = body.chosen["pKIStatusInfo"]["failInfo"].native
    return set(bits or ())


def statuses(response: PKIMessage) -> dict[int, str]:
    """certReqId -> status of an ip/cp/kup."""
    return {
        r["certReqId"].native: r["status"]["status"].native
        for r in response["body"].chosen["response"]
    }


def is_protected(response: PKIMessage) -> bool:
    return response["protection"].native is not None


def tid_of(message: PKIMessage) -> bytes:
    tid: bytes = message["header"]["transactionID"].native
    return tid


_CRAFTERS = itertools.count()


@dataclass
class Crafter:
    """Builds requests by hand (any body, any header field), MAC-protected like client-1's."""

    clock: FixedClock
    random: DeterministicRandom = field(
        default_factory=lambda: DeterministicRandom(b"crafter %d" % next(_CRAFTERS))
    )
    credential: MacCredential | SignatureCredential | None = field(
        default_factory=lambda: MacCredential(b"client-1", SECRETS[b"client-1"])
    )

    def message(
        self,
        body: PKIBody,
        *,
        tid: bytes | None = None,
        sender_nonce: bytes | None = None,
        recip_nonce: bytes | None = None,
        pvno: int = 2,
        message_time: datetime | bool | None = True,
        implicit_confirm: bool = False,
        general_info: Sequence[dict[str, object]] = (),
        omit: Sequence[str] = (),
    ) -> PKIMessage:
        """A request with `body`; `tid`/`sender_nonce` fresh unless given; header fields named in
        `omit` are left out; `message_time` True means the clock's time."""
        signs = isinstance(self.credential, SignatureCredential)
        header: dict[str, object] = {
            "pvno": pvno,
            "sender": GeneralName.load(b"\xa4\x02\x30\x00")  # NULL-DN: protect() fills it in
            if signs
            else general_name(name("crafted client")),
            "recipient": general_name(pki().server.name),
            "transactionID": tid if tid is not None else self.random(16),
            "senderNonce": sender_nonce if sender_nonce is not None else self.random(16),
        }
        if message_time is True:
            header["messageTime"] = self.clock().replace(microsecond=0)
        elif isinstance(message_time, datetime):
            header["messageTime"] = message_time
        if recip_nonce is not None:
            header["recipNonce"] = recip_nonce
        infos = list(general_info)
        if implicit_confirm:
            infos.append({"infoType": "implicitConfirm", "infoValue": Null()})
        if infos:
            header["generalInfo"] = infos
        for field_name in omit:
            header.pop(field_name, None)
        message = PKIMessage({"header": PKIHeader(header), "body": body})
        if self.credential is None:
            return message
        return protect(message, self.credential, random_bytes=self.random)

    def follow_up(self, response: PKIMessage, body: PKIBody, **kwargs: Any) -> PKIMessage:
        """A request continuing the transaction of `response` (its tid, recipNonce = its nonce)."""
        header = response["header"]
        kwargs.setdefault("tid", header["transactionID"].native)
        kwargs.setdefault("recip_nonce", header["senderNonce"].native)
        return self.message(body, **kwargs)


def body(name_: str, value: Any) -> PKIBody:
    return PKIBody(name=name_, value=value)


def signing_crafter(clock: FixedClock, kind: str = "ec") -> Crafter:
    """A `Crafter` protecting with the signature of client certificate `kind`."""
    identity = pki().clients[kind]
    return Crafter(clock, credential=SignatureCredential(identity.key, identity.certificate))


def ra_verified_body(body_type: str = "cr", common_name: str = "ra verified") -> PKIBody:
    """A cr (or ir/kur) with one request whose POPO is raVerified (the client engine cannot
    build that one: see the report)."""
    public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    request = CertRequest(
        {
            "certReqId": 0,
            "certTemplate": {
                "subject": AsnName.load(name(common_name).public_bytes()),
                "publicKey": PublicKeyInfo.load(spki),
            },
        }
    )
    popo = ProofOfPossession(name="raVerified", value=Null())
    return body(body_type, [{"certReq": request, "popo": popo}])


Step = Callable[[PKIMessage], PKIMessage]
