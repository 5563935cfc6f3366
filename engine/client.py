"""The sans-IO CMP client engine, the server engine's mirror (RFC 9810 5.3, RFC 9483 4).

A `ClientEngine` starts transactions (ir, cr, kur, p10cr, rr, genm, error); each
`ClientTransaction` gives the message to send and, for every response fed back, the next message
(certConf, pollReq) or None when done. Responses are validated: protection, pvno, transactionID,
recipNonce, body type, certReqIds; certConf carries the certHash of every certificate received.

    txn = client.ir([CertRequestSpec(key=new_key, subject=name)])
    message = txn.request
    while message is not None:
        message = txn.receive(transfer(message))
    txn.result.certificates
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto.core import Null
from asn1crypto.crl import CRLReason
from asn1crypto.csr import CertificationRequest
from asn1crypto.keys import PublicKeyInfo
from asn1crypto.x509 import Extension, Extensions, GeneralName, Name
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .asn1 import (
    CertRequest,
    CertStatus,
    CertTemplate,
    InfoTypeAndValue,
    PKIBody,
    PKIHeader,
    PKIMessage,
    PKIStatusInfo,
)
from .certhash import cert_hash
from .envelope import RecipientPrivateKey, decrypt_certificate
from .errors import (
    BadDataFormat,
    BadRecipientNonce,
    BadRequest,
    CmpError,
    FailInfo,
    UnsupportedVersion,
)
from .pbm import DerivedKeyCache
from .popo import signature_popo
from .protection import Credential, MacCredential, protect, verify_protection
from .responses import RESPONSE_TO, error_body, status_info
from .signature import SigningKey
from .trust import TrustConfig

RandomBytes = Callable[[int], bytes]
NULL_DN_DER = b"\xa4\x02\x30\x00"  # GeneralName directoryName with an empty RDNSequence


def null_dn() -> GeneralName:
    """The NULL-DN GeneralName: "no name" as a sender or recipient (RFC 9483 3.1)."""
    return GeneralName.load(NULL_DN_DER)


@dataclass
class ClientConfig:
    """How a client talks to one server."""

    clock: Callable[[], datetime]
    random: RandomBytes
    credential: Credential | None  # MAC (reference + secret) or signature (key + certificate)
    recipient: GeneralName = field(default_factory=null_dn)  # the CA's name, or NULL-DN
    sender: GeneralName | None = None  # None: the signer's subject, or NULL-DN for MAC
    trust: TrustConfig | None = None  # for signature-protected responses
    pvno: int = 2
    implicit_confirm: bool = False  # ask for implicit confirmation
    accept_unprotected_errors: bool = False  # like `openssl cmp -unprotected_errors`
    cache: DerivedKeyCache = field(default_factory=DerivedKeyCache)


@dataclass(frozen=True)
class CertRequestSpec:
    """One certificate to ask for: the key to certify (and prove) and the template's contents."""

    key: SigningKey | None = None  # private key: signature POPO over the request
    public_key: bytes | None = None  # DER SPKI, when `key` is not given (raVerified, encrCert)
    subject: x509.Name | None = None
    extensions: Sequence[x509.Extension[x509.ExtensionType]] = ()
    not_before: datetime | None = None
    not_after: datetime | None = None
    popo: str = "signature"  # or "raVerified", "encrCert"
    decryption_key: RecipientPrivateKey | None = None  # for an encrypted certificate


@dataclass(frozen=True)
class RevocationSpec:
    """One certificate to revoke."""

    issuer: x509.Name
    serial_number: int
    reason: int | None = None  # CRLReason code


class Phase(enum.StrEnum):
    """Where a client transaction stands."""

    awaiting_response = "awaiting_response"
    polling = "polling"
    confirming = "confirming"
    done = "done"
    failed = "failed"


@dataclass
class ClientResult:
    """What the transaction produced."""

    certificates: dict[int, x509.Certificate] = field(default_factory=dict)
    statuses: dict[int, PKIStatusInfo] = field(default_factory=dict)  # per certReqId / rr entry
    ca_pubs: list[x509.Certificate] = field(default_factory=list)
    extra_certs: list[x509.Certificate] = field(default_factory=list)
    general_info: list[InfoTypeAndValue] = field(default_factory=list)  # genp content
    error: PKIStatusInfo | None = None  # an error body or negative answer from the server
    implicit_confirm_granted: bool = False

    @property
    def fail_info(self) -> set[str]:
        """Names of the failure bits of the error, if any."""
        if self.error is None or self.error["failInfo"].native is None:
            return set()
        return set(self.error["failInfo"].native)


class ClientEngine:
    """Builds the first message of each kind of transaction."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    def ir(self, requests: Sequence[CertRequestSpec]) -> ClientTransaction:
        """Initial registration: enrol with a (typically MAC) credential."""
        return self._cert_request("ir", requests)

    def cr(self, requests: Sequence[CertRequestSpec]) -> ClientTransaction:
        """Certification request from an already enrolled client."""
        return self._cert_request("cr", requests)

    def kur(self, requests: Sequence[CertRequestSpec], old: x509.Certificate) -> ClientTransaction:
        """Key update: replace `old` (protect with its key; oldCertID names it)."""
        return self._cert_request("kur", requests, old)

    def p10cr(self, csr_der: bytes) -> ClientTransaction:
        """A PKCS#10 request wrapped in CMP (certReqId -1)."""
        body = PKIBody(name="p10cr", value=CertificationRequest.load(csr_der))
        return self._start(body, {-1: None})

    def rr(self, entries: Sequence[RevocationSpec]) -> ClientTransaction:
        """Revocation request, one RevDetails per entry."""
        details = [_rev_details(entry) for entry in entries]
        return self._start(PKIBody(name="rr", value=details), {})

    def genm(self, items: Sequence[InfoTypeAndValue | dict[str, object]]) -> ClientTransaction:
        """General message, e.g. `[{"infoType": "caCerts"}]`."""
        return self._start(PKIBody(name="genm", value=list(items)), {})

    def error(self, fail_info: FailInfo, text: str = "") -> ClientTransaction:
        """An error message of the client's own (answered with pkiconf)."""
        body = error_body(status_info("rejection", fail_info, text), text)
        return self._start(body, {})

    def _cert_request(
        self, body_type: str, specs: Sequence[CertRequestSpec], old: x509.Certificate | None = None
    ) -> ClientTransaction:
        messages = []
        keys: dict[int, RecipientPrivateKey | None] = {}
        for cert_req_id, spec in enumerate(specs):
            cert_request = CertRequest(
                {
                    "certReqId": cert_req_id,
                    "certTemplate": _template(spec),
                    **({"controls": [_old_cert_id(old)]} if old is not None else {}),
                }
            )
            messages.append({"certReq": cert_request, "popo": _popo(spec, cert_request)})
            keys[cert_req_id] = spec.decryption_key
        return self._start(PKIBody(name=body_type, value=messages), keys)

    def _start(
        self, body: PKIBody, keys: dict[int, RecipientPrivateKey | None]
    ) -> ClientTransaction:
        return ClientTransaction(self.config, body, keys)


class ClientTransaction:
    """One transaction: the messages to send and the checks on every response."""

    def __init__(
        self, config: ClientConfig, body: PKIBody, keys: dict[int, RecipientPrivateKey | None]
    ) -> None:
        self.config = config
        self.transaction_id = config.random(16)
        self.body_type: str = body.name
        self.phase = Phase.awaiting_response
        self.result = ClientResult()
        self.check_after = 0
        self._keys = keys
        self._expected = _expected_bodies(body.name)
        self._pending_ids: list[int] = []
        ask_implicit = config.implicit_confirm and body.name in RESPONSE_TO
        self.request = self._message(body, implicit=ask_implicit)

    # ---- sending -----------------------------------------------------------------------------

    def _message(self, body: PKIBody, *, implicit: bool = False) -> PKIMessage:
        self._nonce = self.config.random(16)
        header: dict[str, object] = {
            "pvno": self.config.pvno,
            "sender": self.config.sender or null_dn(),
            "recipient": self.config.recipient,
            "messageTime": self.config.clock().astimezone(UTC).replace(microsecond=0),
            "transactionID": self.transaction_id,
            "senderNonce": self._nonce,
        }
        if getattr(self, "_recip_nonce", None) is not None:
            header["recipNonce"] = self._recip_nonce
        if implicit:
            header["generalInfo"] = [{"infoType": "implicitConfirm", "infoValue": Null()}]
        message = PKIMessage({"header": PKIHeader(header), "body": body})
        credential = self.config.credential
        if credential is None:
            return message
        return protect(
            message, credential, random_bytes=self.config.random, cache=self.config.cache
        )

    # ---- receiving ---------------------------------------------------------------------------

    def receive(self, response: bytes | PKIMessage) -> PKIMessage | None:
        """Validate a response; the next message to send, or None when the transaction ended.

        A response that fails validation raises the `CmpError` naming its failure bit (the
        caller may report it to the server with `ClientEngine.error`); the transaction fails.
        """
        try:
            message = response if isinstance(response, PKIMessage) else PKIMessage.load(response)
            self._check(message)
            return self._advance(message)
        except CmpError:
            self.phase = Phase.failed
            raise

    def _check(self, message: PKIMessage) -> None:
        header = message["header"]
        body = message["body"].name
        negative = body == "error" or _is_rejection(message)
        verify_protection(
            message,
            now=self.config.clock(),
            mac_secrets=_OwnSecret(self.config.credential),
            trust=self.config.trust,
            cache=self.config.cache,
            accept_unprotected=negative and self.config.accept_unprotected_errors,
        )
        if header["pvno"].native != self.config.pvno:
            raise UnsupportedVersion(f"response pvno {header['pvno'].native}")
        if header["transactionID"].native != self.transaction_id:
            raise BadRequest("response for another transaction")
        if header["recipNonce"].native != self._nonce:
            raise BadRecipientNonce("recipNonce is not the senderNonce of the request")
        if body != "error" and body not in self._expected:
            raise BadRequest(f"unexpected {body} in answer to {self.body_type}")
        self._recip_nonce = header["senderNonce"].native

    def _advance(self, message: PKIMessage) -> PKIMessage | None:
        body = message["body"]
        self.result.extra_certs = (
            [_x509(c) for c in message["extraCerts"]] if _present(message["extraCerts"]) else []
        )
        if body.name == "error":
            info = body.chosen["pKIStatusInfo"]
            if info["status"].native == "waiting" and self.phase is not Phase.confirming:
                return self._poll([-1], 0)
            return self._fail(info)
        if body.name == "pollRep":
            entry = body.chosen[0]
            return self._poll(
                [e["certReqId"].native for e in body.chosen], entry["checkAfter"].native
            )
        if body.name in ("ip", "cp", "kup"):
            return self._certificates(message)
        if body.name == "rp":
            statuses = list(body.chosen["status"])
            self.result.statuses = dict(enumerate(statuses))
            return self._done()
        if body.name == "genp":
            self.result.general_info = list(body.chosen)
            return self._done()
        return self._done()  # pkiconf

    def _certificates(self, message: PKIMessage) -> PKIMessage | None:
        rep = message["body"].chosen
        if _present(rep["caPubs"]):
            self.result.ca_pubs = [_x509(c) for c in rep["caPubs"]]
        waiting, received = [], {}
        for response in rep["response"]:
            cert_req_id = response["certReqId"].native
            if cert_req_id not in self._keys:
                raise BadRequest(f"response for certReqId {cert_req_id} never requested")
            info = response["status"]
            self.result.statuses[cert_req_id] = info
            status = info["status"].native
            if status == "waiting":
                waiting.append(cert_req_id)
            elif status in ("accepted", "grantedWithMods"):
                received[cert_req_id] = self._certificate(cert_req_id, response)
        if waiting:
            return self._poll(waiting, 0)
        if not received:
            first = rep["response"][0]["status"] if len(rep["response"]) else None
            return self._fail(first)
        self.result.certificates.update(received)
        granted = _has_implicit_confirm(message["header"])
        self.result.implicit_confirm_granted = granted
        if granted:
            return self._done()
        self.phase = Phase.confirming
        self._expected = frozenset({"pkiconf"})
        return self._message(self._cert_conf(received))

    def _certificate(self, cert_req_id: int, response: object) -> x509.Certificate:
        pair = response["certifiedKeyPair"]  # type: ignore[index]
        if not _present(pair):
            raise BadDataFormat(f"accepted certReqId {cert_req_id} without a certificate")
        chosen = pair["certOrEncCert"]
        if chosen.name == "certificate":
            return x509.load_der_x509_certificate(chosen.chosen.untag().dump())
        key = self._keys.get(cert_req_id)
        sealed = chosen.chosen
        if key is None or sealed.name != "envelopedData":
            raise BadDataFormat("encrypted certificate but no key to decrypt it")
        return x509.load_der_x509_certificate(decrypt_certificate(sealed.chosen.untag(), key))

    def _cert_conf(self, received: dict[int, x509.Certificate]) -> PKIBody:
        statuses = []
        for cert_req_id, certificate in received.items():
            der = certificate.public_bytes(Encoding.DER)
            statuses.append(CertStatus({"certHash": cert_hash(der), "certReqId": cert_req_id}))
        return PKIBody(name="certConf", value=statuses)

    def _poll(self, cert_req_ids: list[int], check_after: int) -> PKIMessage:
        self.phase = Phase.polling
        self.check_after = check_after
        self._pending_ids = cert_req_ids
        self._expected = self._expected | {"pollRep"}
        body = PKIBody(name="pollReq", value=[{"certReqId": i} for i in cert_req_ids])
        return self._message(body)

    def _fail(self, info: PKIStatusInfo | None) -> PKIMessage | None:
        """The server refused: nothing more to send."""
        self.result.error = info
        self.phase = Phase.failed
        return None

    def _done(self) -> PKIMessage | None:
        """The transaction ended well: nothing more to send."""
        self.phase = Phase.done
        return None


class _OwnSecret:
    """MacSecrets view of the client's own credential: the server answers with the same secret."""

    def __init__(self, credential: Credential | None) -> None:
        self._secret = credential.secret if isinstance(credential, MacCredential) else None

    def secret_for(self, sender_kid: bytes | None) -> bytes | None:
        return self._secret


def _expected_bodies(body_type: str) -> frozenset[str]:
    if body_type in RESPONSE_TO:
        return frozenset({RESPONSE_TO[body_type]})
    return frozenset({"rr": {"rp"}, "genm": {"genp"}}.get(body_type, {"pkiconf"}))


def _template(spec: CertRequestSpec) -> CertTemplate:
    value: dict[str, object] = {}
    spki = spec.public_key
    if spec.key is not None:
        spki = spec.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if spki is not None:
        value["publicKey"] = PublicKeyInfo.load(spki)
    if spec.subject is not None:
        value["subject"] = Name.load(spec.subject.public_bytes())
    if spec.not_before or spec.not_after:
        validity: dict[str, object] = {}
        if spec.not_before:
            validity["notBefore"] = {"general_time": spec.not_before}
        if spec.not_after:
            validity["notAfter"] = {"general_time": spec.not_after}
        value["validity"] = validity
    if spec.extensions:
        value["extensions"] = Extensions.load(_extensions_der(spec.extensions))
    return CertTemplate(value)


def _extensions_der(extensions: Sequence[x509.Extension[x509.ExtensionType]]) -> bytes:
    items = [
        Extension(
            {
                "extn_id": ext.oid.dotted_string,
                "critical": ext.critical,
                "extn_value": ext.value.public_bytes(),
            }
        )
        for ext in extensions
    ]
    return bytes(Extensions(items).dump())


def _popo(spec: CertRequestSpec, cert_request: CertRequest) -> object:
    if spec.popo == "raVerified":
        return {"name": "raVerified", "value": Null()}
    if spec.popo == "encrCert":
        return {"name": "keyEncipherment", "value": {"name": "subsequentMessage", "value": 0}}
    if spec.key is None:
        raise BadRequest("signature POPO needs the private key")
    return signature_popo(cert_request, spec.key)


def _old_cert_id(old: x509.Certificate) -> dict[str, object]:
    issuer = GeneralName(name="directory_name", value=Name.load(old.issuer.public_bytes()))
    return {"type": "oldCertID", "value": {"issuer": issuer, "serialNumber": old.serial_number}}


def _rev_details(entry: RevocationSpec) -> dict[str, object]:
    details: dict[str, object] = {
        "certDetails": {
            "issuer": Name.load(entry.issuer.public_bytes()),
            "serialNumber": entry.serial_number,
        }
    }
    if entry.reason is not None:
        details["crlEntryDetails"] = [
            {"extn_id": "crl_reason", "critical": False, "extn_value": CRLReason(entry.reason)}
        ]
    return details


def _is_rejection(message: PKIMessage) -> bool:
    body = message["body"]
    if body.name in ("ip", "cp", "kup"):
        return all(r["status"]["status"].native == "rejection" for r in body.chosen["response"])
    return False


def _has_implicit_confirm(header: PKIHeader) -> bool:
    infos = header["generalInfo"]
    return _present(infos) and any(i["infoType"].native == "implicitConfirm" for i in infos)


def _present(value: object) -> bool:
    return getattr(value, "native", None) is not None


def _x509(certificate: object) -> x509.Certificate:
    return x509.load_der_x509_certificate(certificate.dump())  # type: ignore[attr-defined]
