"""The sans-IO CMP client engine, the server engine's mirror (RFC 9810 5.3, RFC 9483 4).

A `ClientEngine` starts transactions (ir, cr, kur, p10cr, rr, genm, error); each
`ClientTransaction` gives the message to send and, for every response fed back, the next message
(certConf, pollReq, error) or None when the transaction has ended. Nothing here does I/O or reads
a clock: time and randomness come from `ClientConfig`, bytes go in and out through the caller.

    txn = client.ir([CertRequestSpec(key=new_key, subject=name)])
    message = txn.request
    while message is not None:
        # wait txn.check_after seconds first when message is a pollReq
        message = txn.receive(transfer(message))
    txn.result.certificates

Every response is validated before it is acted on: pvno, transactionID, recipNonce (= the
senderNonce just sent), sender (if an expected one is configured), body type (the answer to what
was sent, pollRep while polling, error at any time), protection (MAC with the client's secret, or
a signature by a certificate valid under `ClientConfig.trust`; negative answers may lack it with
`accept_unprotected_errors`, like `openssl cmp -unprotected_errors`) and certReqIds (each answers
one request, once). A response failing a check raises the `CmpError` naming its failure bit and
fails the transaction; `ClientTransaction.report` then builds the error message to tell the server.

Certificates: a new certificate must carry the requested public key and pass the optional
`check_certificate` callback; a failing one is rejected in certConf (status rejection, failInfo
incorrectData, the reason as statusString). certConf carries the certHash of every certificate
received (RFC 9810 5.3.18). Encrypted certificates (encrCert, indirect POP) are decrypted with the
request's private key. Implicit confirmation is asked for if configured and detected in the answer.

Central key generation (RFC 9483 4.1.6, `CertRequestSpec(central_keygen=True)`): the template has
no public key (or one with empty key bits naming the wanted algorithm) and there is no POPO. The
answer's privateKey is decrypted with the shared secret (MAC credential) or the protection key
(signature credential), the KGA's signature verified under `ClientConfig.kga_trust` (by default
`trust` with EKU id-kp-cmKGA required, as OpenSSL's cmKGA purpose), and the key must belong to
the certificate; then it is in `ClientResult.private_keys`. A key that fails any of this gets its
certificate rejected in certConf, like a certificate that fails its checks. Both RFC 9483's key
package and OpenSSL 3.5's bare key are read (`sanscmp.engine.keygen`).

Polling (RFC 9810 5.3.22, RFC 9483 4.4): an ip/cp/kup with status waiting, or an error message
with status waiting (delayed delivery of rp, genp or the pkiconf for certConf), starts polling;
`check_after` tells how long to wait before sending the pollReq this engine returns. Polls for a
response other than ip/cp/kup use certReqId -1.

p10cr: RFC 9483 4.1.4 has the answer use certReqId -1, as OpenSSL 3.0's mock server does; some
servers (older OpenSSL versions) answer 0. Both are accepted, and pollReq/certConf then echo the
certReqId the server used.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from asn1crypto.cms import EnvelopedData
from asn1crypto.core import Boolean, Integer, Null, OctetBitString, OctetString, Void
from asn1crypto.core import ObjectIdentifier as AsnObjectIdentifier
from asn1crypto.crl import CRLReason
from asn1crypto.csr import CertificationRequest
from asn1crypto.keys import PublicKeyInfo
from asn1crypto.x509 import Certificate as Asn1Certificate
from asn1crypto.x509 import Extensions, GeneralName, Name
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .asn1 import (
    BODY_TYPES,
    NULL_DN_DER,
    AuthInfo,
    CertRequest,
    CertStatus,
    CertTemplate,
    InfoTypeAndValue,
    PKIBody,
    PKIMessage,
    PKIStatusInfo,
    PKMACValue,
    POPOPrivKey,
    POPOSigningKeyInput,
    ProofOfPossession,
    has_general_info,
    load_der,
    null_dn,
)
from .certhash import cert_hash
from .encode import GENERALIZED_TIME, explicit, octet_string, sequence, tlv
from .envelope import RecipientPrivateKey, decrypt_certificate
from .errors import (
    BadAlg,
    BadDataFormat,
    BadRecipientNonce,
    BadRequest,
    CmpError,
    DecodeError,
    FailInfo,
    UnsupportedVersion,
    WrongAuthority,
)
from .keygen import CMKGA, open_private_key, same_public_key
from .pbm import (
    DEFAULT_POLICY,
    DerivedKeyCache,
    MacPolicy,
    compute_mac,
    parse_mac_algorithm,
    pbm_algorithm,
    pbmac1_algorithm,
)
from .popo import signature_popo
from .protection import (
    Credential,
    MacCredential,
    Pbmac1Scheme,
    SignatureCredential,
    protect,
    verify_protection,
)
from .responses import IMPLICIT_CONFIRM_INFO, RESPONSE_TO, error_body, status_info
from .signature import SigningKey
from .trust import TrustConfig

RandomBytes = Callable[[int], bytes]
POLL_ID_OTHER = -1  # certReqId of pollReq/pollRep for anything but ip/cp/kup (RFC 9810 5.3.22)
P10CR_ID = -1  # certReqId of the answer to a p10cr (RFC 9483 4.1.4)
CRL_REASON_OID = "2.5.29.21"  # id-ce-cRLReasons
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)

CertificateCheck = Callable[[int, x509.Certificate, PKIMessage], str | None]
"""`(certReqId, new certificate, the ip/cp/kup carrying it) -> None` to accept it, or the reason
to reject it in certConf (e.g. it does not chain to the expected CA, like `-out_trusted`)."""


def directory_name(name: x509.Name) -> GeneralName:
    """A directoryName GeneralName for `name` (e.g. the CA's subject as recipient)."""
    return GeneralName(name="directory_name", value=Name.load(name.public_bytes()))


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
    unprotected_requests: bool = False  # send unprotected; the credential still checks answers
    expected_sender: GeneralName | None = None  # responses must come from this name
    check_certificate: CertificateCheck | None = None  # accept or reject each new certificate
    mac_policy: MacPolicy = DEFAULT_POLICY  # bounds on the MAC parameters of responses
    cache: DerivedKeyCache = field(default_factory=DerivedKeyCache)
    # who may sign centrally generated keys; None: `trust`, with EKU id-kp-cmKGA required
    kga_trust: TrustConfig | None = None


@dataclass(frozen=True)
class CertRequestSpec:
    """One certificate to ask for: the key to certify (and prove) and the template's contents.

    `popo`: "signature" (needs `key`), "raVerified" (an RA vouches; `key` or `public_key`),
    "encrCert" (indirect POP: the certificate comes back encrypted to the key; keyEncipherment
    for RSA, keyAgreement for EC/X25519/X448; decrypted with `decryption_key`, by default `key`).
    Without a subject the signature POPO goes over poposkInput, authenticated by the sender's
    name or, for a MAC credential, by a publicKeyMAC with the shared secret (RFC 4211 4.1).

    `central_keygen`: the CA generates the key (RFC 9483 4.1.6): no `key`, `public_key` or
    `decryption_key`, no POPO; `key_algorithm` (DER AlgorithmIdentifier, e.g. id-ecPublicKey with
    its curve) names the wanted key type in the template's publicKey, its key bits left empty.
    """

    key: SigningKey | None = None  # private key: signature POPO over the request
    public_key: bytes | None = None  # DER SPKI, when `key` is not given
    subject: x509.Name | None = None
    extensions: Sequence[x509.Extension[x509.ExtensionType]] = ()
    not_before: datetime | None = None
    not_after: datetime | None = None
    popo: str = "signature"  # or "raVerified", "encrCert"
    decryption_key: RecipientPrivateKey | None = None  # for an encrypted certificate
    central_keygen: bool = False  # ask the CA to generate the key pair
    key_algorithm: bytes | None = None  # DER AlgorithmIdentifier: the key type wanted, if any


@dataclass(frozen=True)
class RevocationSpec:
    """One certificate to revoke, by issuer and serial number, with an optional CRLReason code."""

    issuer: x509.Name
    serial_number: int
    reason: int | None = None  # CRLReason code, e.g. 1 keyCompromise, 4 superseded

    @classmethod
    def of(cls, certificate: x509.Certificate, reason: int | None = None) -> RevocationSpec:
        """Revoke `certificate`."""
        return cls(certificate.issuer, certificate.serial_number, reason)


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

    certificates: dict[int, x509.Certificate] = field(default_factory=dict)  # accepted, confirmed
    statuses: dict[int, PKIStatusInfo] = field(default_factory=dict)  # per certReqId / rr entry
    rejected: dict[int, str] = field(default_factory=dict)  # certificates the client refused
    ca_pubs: list[x509.Certificate] = field(default_factory=list)
    extra_certs: list[x509.Certificate] = field(default_factory=list)
    general_info: list[InfoTypeAndValue] = field(default_factory=list)  # genp content
    error: PKIStatusInfo | None = None  # an error body or negative answer from the server
    error_code: int | None = None  # errorCode of an error message
    error_details: list[str] = field(default_factory=list)  # errorDetails of an error message
    implicit_confirm_granted: bool = False
    polls: int = 0  # pollReq messages sent
    # centrally generated keys of accepted certificates, by certReqId
    private_keys: dict[int, PrivateKeyTypes] = field(default_factory=dict)

    @property
    def fail_info(self) -> set[str]:
        """Names of the failure bits of the error, if any."""
        if self.error is None or self.error["failInfo"].native is None:
            return set()
        return set(self.error["failInfo"].native)

    @property
    def status_text(self) -> list[str]:
        """statusString of the error, if any."""
        if self.error is None or self.error["statusString"].native is None:
            return []
        return list(self.error["statusString"].native)


@dataclass(frozen=True)
class _Requested:
    """What the client remembers of one certificate request."""

    spki: bytes | None  # DER SubjectPublicKeyInfo asked for, to compare with the new certificate
    decryption_key: RecipientPrivateKey | None  # opens an encrypted certificate
    central_keygen: bool = False  # the answer must carry the private key


class ClientEngine:
    """Builds the first message of each kind of transaction."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    def ir(self, requests: Sequence[CertRequestSpec]) -> ClientTransaction:
        """Initial registration: enrol with a (typically MAC) credential."""
        return self.certificate_request("ir", requests)

    def cr(self, requests: Sequence[CertRequestSpec]) -> ClientTransaction:
        """Certification request from an already enrolled client."""
        return self.certificate_request("cr", requests)

    def kur(self, requests: Sequence[CertRequestSpec], old: x509.Certificate) -> ClientTransaction:
        """Key update: replace `old` (protect with its key); an oldCertID control names it and the
        template takes its subject unless the spec gives one."""
        return self.certificate_request("kur", requests, old)

    def p10cr(self, csr_der: bytes) -> ClientTransaction:
        """A PKCS#10 request wrapped in CMP (answered with certReqId -1)."""
        csr = load_der(CertificationRequest, csr_der)
        spki = csr["certification_request_info"]["subject_pk_info"].dump()
        body = PKIBody(name="p10cr", value=csr)
        return ClientTransaction(self.config, body, {P10CR_ID: _Requested(spki, None)})

    def rr(self, entries: Sequence[RevocationSpec]) -> ClientTransaction:
        """Revocation request, one RevDetails per entry (answered by one status each)."""
        if not entries:
            raise ValueError("an rr needs at least one certificate to revoke")
        details = [_rev_details(entry) for entry in entries]
        return ClientTransaction(self.config, PKIBody(name="rr", value=details), {})

    def genm(self, items: Sequence[InfoTypeAndValue | dict[str, object]]) -> ClientTransaction:
        """General message, e.g. `[{"infoType": "caCerts"}]`."""
        return ClientTransaction(self.config, PKIBody(name="genm", value=list(items)), {})

    def error(
        self, fail_info: FailInfo, text: str = "", error_code: int | None = None
    ) -> ClientTransaction:
        """An error message of the client's own (answered with pkiconf)."""
        body = _error_body(fail_info, text, error_code)
        return ClientTransaction(self.config, body, {})

    def certificate_request(
        self,
        body_type: str,
        specs: Sequence[CertRequestSpec],
        old: x509.Certificate | None = None,
    ) -> ClientTransaction:
        """An ir, cr or kur with one CertReqMsg per spec (certReqId 0, 1, ...)."""
        if body_type not in ("ir", "cr", "kur"):
            raise ValueError(f"{body_type} is not a CRMF certificate request")
        if not specs:
            raise ValueError("a certificate request needs at least one CertRequestSpec")
        messages = []
        requested: dict[int, _Requested] = {}
        for cert_req_id, spec in enumerate(specs):
            if spec.central_keygen:
                messages.append(self._central_keygen_request(cert_req_id, spec, old))
                requested[cert_req_id] = _Requested(None, None, central_keygen=True)
                continue
            spki = _spki(spec)
            subject = spec.subject if spec.subject is not None or old is None else old.subject
            controls = {"controls": [_old_cert_id(old)]} if old is not None else {}
            cert_request = _encoded(
                CertRequest(
                    {
                        "certReqId": cert_req_id,
                        "certTemplate": _template(spec, spki, subject),
                        **controls,
                    }
                )
            )
            popo = self._popo(spec, cert_request, spki, subject is not None)
            messages.append(sequence(cert_request.dump(), popo.dump()))
            requested[cert_req_id] = _Requested(spki, _decryption_key(spec))
        return ClientTransaction(self.config, _body(body_type, sequence(*messages)), requested)

    def _central_keygen_request(
        self, cert_req_id: int, spec: CertRequestSpec, old: x509.Certificate | None
    ) -> bytes:
        """A CertReqMsg without POPO whose template has no key, or only the wanted algorithm."""
        if spec.key is not None or spec.public_key is not None or spec.decryption_key is not None:
            raise ValueError("central key generation takes no key: the CA generates it")
        hint = None
        if spec.key_algorithm is not None:
            hint = sequence(spec.key_algorithm + OctetBitString(b"").dump())
        subject = spec.subject if spec.subject is not None or old is None else old.subject
        controls = {"controls": [_old_cert_id(old)]} if old is not None else {}
        cert_request = CertRequest(
            {"certReqId": cert_req_id, "certTemplate": _template(spec, hint, subject), **controls}
        )
        return sequence(cert_request.dump())  # CertReqMsg without popo

    def _popo(
        self, spec: CertRequestSpec, cert_request: CertRequest, spki: bytes | None, subject: bool
    ) -> ProofOfPossession:
        if spec.popo == "raVerified":
            return ProofOfPossession(name="raVerified", value=Null())
        if spec.popo == "encrCert":
            if spki is None:
                raise ValueError("encrCert POPO needs the public key to encrypt the certificate to")
            kind = "keyEncipherment" if _is_rsa(spki) else "keyAgreement"
            privkey = POPOPrivKey(name="subsequentMessage", value=0)  # encrCert
            return ProofOfPossession(name=kind, value=privkey)
        if spec.popo != "signature":
            raise ValueError(f"unknown POPO kind {spec.popo!r}")
        if spec.key is None or spki is None:
            raise ValueError("signature POPO needs the private key")
        if subject:
            return signature_popo(cert_request, spec.key)
        poposk_input = POPOSigningKeyInput(
            {"authInfo": self._auth_info(spki), "publicKey": PublicKeyInfo.load(spki)}
        )
        return signature_popo(cert_request, spec.key, poposk_input=poposk_input)

    def _auth_info(self, spki: bytes) -> AuthInfo:
        """poposkInput's authInfo: the sender's name, or a publicKeyMAC with the shared secret."""
        config = self.config
        credential = config.credential
        sender = config.sender
        if sender is None and isinstance(credential, SignatureCredential):
            sender = directory_name(credential.certificate.subject)
        if sender is not None and sender.dump() != NULL_DN_DER:
            return AuthInfo(name="sender", value=sender)
        if not isinstance(credential, MacCredential):
            raise ValueError("a request without subject needs a sender name or a MAC credential")
        scheme = credential.scheme
        salt = scheme.salt if scheme.salt is not None else config.random(scheme.salt_length)
        if isinstance(scheme, Pbmac1Scheme):
            alg = pbmac1_algorithm(
                salt,
                prf=scheme.prf,
                iterations=scheme.iterations,
                key_length=scheme.key_length,
                mac=scheme.mac,
            )
        else:
            alg = pbm_algorithm(salt, owf=scheme.owf, iterations=scheme.iterations, mac=scheme.mac)
        params = parse_mac_algorithm(alg, config.mac_policy)
        value = compute_mac(params, credential.secret, spki, config.cache)
        return AuthInfo(
            name="publicKeyMAC", value=PKMACValue({"algId": alg, "value": OctetBitString(value)})
        )


class ClientTransaction:
    """One transaction: the messages to send and the checks on every response."""

    def __init__(
        self, config: ClientConfig, body: PKIBody, requested: dict[int, _Requested]
    ) -> None:
        self.config = config
        self.transaction_id: bytes = config.random(16)
        self.body_type: str = body.name
        self.phase = Phase.awaiting_response
        self.result = ClientResult()
        self.check_after = 0  # seconds to wait before sending the pollReq just returned
        self.last_response: PKIMessage | None = None
        self._requested = requested
        self._wire_ids = {cert_req_id: cert_req_id for cert_req_id in requested}
        self._answered: set[int] = set()
        self._received: dict[int, x509.Certificate] = {}  # certificates to confirm
        self._keys: dict[int, PrivateKeyTypes] = {}  # central keys, until their certs are confirmed
        self._entries = len(body.chosen) if body.name == "rr" else 0
        self._expected = _expected_bodies(body.name)
        self._poll_base: frozenset[str] | None = None  # final answers while polling
        self._pending_ids: list[int] = []  # certReqIds polled for (as on the wire)
        self._negative_sent = False  # certConf rejecting or error sent: pkiconf is "negative"
        self._reported = False  # `report` sent an error: the transaction fails at its pkiconf
        self._recip_nonce: bytes | None = None
        self._nonce = b""
        self._implicit_asked = config.implicit_confirm and body.name in RESPONSE_TO
        if body.name == "error":
            self._negative_sent = True
        self.request: PKIMessage = self._message(body, implicit=self._implicit_asked)
        self.last_request: PKIMessage = self.request

    @property
    def finished(self) -> bool:
        """Whether the transaction has ended (done or failed): nothing more to send or receive."""
        return self.phase in (Phase.done, Phase.failed)

    # ---- sending -----------------------------------------------------------------------------

    def _message(self, body: PKIBody, *, implicit: bool = False) -> PKIMessage:
        """The request carrying `body`, protected with the credential. Put together from DER
        (the header encoded here, the body once): asn1crypto would re-encode a value built from a
        dict at every `dump()`, and protection reads the message more than once."""
        config = self.config
        self._nonce = config.random(16)
        sender = config.sender.dump() if config.sender is not None else NULL_DN_DER
        time = config.clock().astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode()
        fields = [
            Integer(config.pvno).dump(),
            sender,
            config.recipient.dump(),
            explicit(0, tlv(GENERALIZED_TIME, time)),
            explicit(4, octet_string(self.transaction_id)),
            explicit(5, octet_string(self._nonce)),
        ]
        if self._recip_nonce is not None:
            fields.append(explicit(6, octet_string(self._recip_nonce)))
        if implicit:
            fields.append(explicit(8, IMPLICIT_CONFIRM_INFO))
        message = PKIMessage(contents=sequence(*fields) + body.dump())
        if config.credential is not None and not config.unprotected_requests:
            message = protect(
                message, config.credential, random_bytes=config.random, cache=config.cache
            )
        self.last_request = message
        return message

    def report(self, error: CmpError | FailInfo, text: str = "") -> PKIMessage:
        """An error message telling the server why this transaction cannot go on (e.g. after
        `receive` raised); the server answers pkiconf and the transaction ends as failed."""
        if self.phase is Phase.done:
            raise ValueError("the transaction ended well: nothing to report")
        if isinstance(error, CmpError):
            fail_info, text = error.fail_info, text or error.text
        else:
            fail_info = error
        self._reported = True
        self._negative_sent = True
        self._poll_base = None
        self._expected = frozenset({"pkiconf"})
        self.phase = Phase.awaiting_response
        return self._message(_error_body(fail_info, text, None))

    # ---- receiving ---------------------------------------------------------------------------

    def receive(self, response: bytes | PKIMessage) -> PKIMessage | None:
        """Validate a response; the next message to send, or None when the transaction ended.

        A response that fails validation raises the `CmpError` naming its failure bit and the
        transaction fails (`report` builds the error message to send the server about it).
        """
        if self.finished:
            raise BadRequest(f"transaction already {self.phase}: no response expected")
        try:
            if isinstance(response, PKIMessage):
                message = response
            else:
                message = PKIMessage.load(bytes(response))
            self._check(message)
            self.last_response = message
            return self._advance(message)
        except CmpError:
            self.phase = Phase.failed
            raise
        except _PARSE_ERRORS as exc:  # a part asn1crypto parses only when it is read
            self.phase = Phase.failed
            raise BadDataFormat(f"malformed response: {type(exc).__name__}: {exc}") from exc

    def _check(self, message: PKIMessage) -> None:
        header = message["header"]
        body = message["body"].name
        pvno = header["pvno"].native
        if pvno != self.config.pvno and not (body == "error" and pvno in (2, 3)):
            raise UnsupportedVersion(f"response pvno {pvno}, request pvno {self.config.pvno}")
        if header["transactionID"].native != self.transaction_id:
            raise BadRequest("response transactionID is not the transaction's")
        if header["recipNonce"].native != self._nonce:
            raise BadRecipientNonce("recipNonce is not the senderNonce of the request")
        expected_sender = self.config.expected_sender
        if (
            expected_sender is not None
            and expected_sender.dump() != NULL_DN_DER
            and not _same_name(header["sender"], expected_sender)
        ):
            raise WrongAuthority("response sender is not the expected server")
        if body != "error" and body not in self._expected:
            raise BadRequest(f"unexpected {body} in answer to {self.last_request['body'].name}")
        self._verify(message)
        nonce = header["senderNonce"].native
        if not nonce:
            raise BadDataFormat("response without senderNonce")
        self._recip_nonce = nonce

    def _verify(self, message: PKIMessage) -> None:
        """Protection: required, except (if allowed) missing or invalid on negative answers."""
        lenient = self.config.accept_unprotected_errors and self._is_negative(message)
        try:
            verify_protection(
                message,
                now=self.config.clock(),
                mac_secrets=_OwnSecret(self.config.credential),
                trust=self.config.trust,
                mac_policy=self.config.mac_policy,
                cache=self.config.cache,
                accept_unprotected=lenient,
            )
        except CmpError:
            if not lenient:
                raise

    def _is_negative(self, message: PKIMessage) -> bool:
        """The answers `openssl cmp -unprotected_errors` accepts unprotected."""
        body = message["body"]
        if body.name == "error":
            return True
        if body.name in ("ip", "cp", "kup"):
            statuses = [r["status"] for r in body.chosen["response"]]
        elif body.name == "rp":
            statuses = list(body.chosen["status"])
        elif body.name == "pkiconf":
            return self._negative_sent
        else:
            return False
        return bool(statuses) and all(s["status"].native == "rejection" for s in statuses)

    def _advance(self, message: PKIMessage) -> PKIMessage | None:
        body = message["body"]
        self._collect_extra_certs(message)
        if body.name == "error":
            return self._error(body.chosen)
        if body.name == "pollRep":
            return self._poll_rep(body.chosen)
        if body.name in ("ip", "cp", "kup"):
            return self._cert_rep(message)
        if body.name == "rp":
            return self._rev_rep(body.chosen)
        if body.name == "genp":
            self.result.general_info = list(body.chosen)
            return self._done()
        return self._pkiconf()

    def _error(self, content: Any) -> PKIMessage | None:
        info = content["pKIStatusInfo"]
        if info["status"].native == "waiting" and not self._reported:
            # Delayed delivery (RFC 9810 5.3.22): poll for the answer with certReqId -1.
            return self._poll([POLL_ID_OTHER], 0)
        self.result.error_code = content["errorCode"].native
        self.result.error_details = list(content["errorDetails"].native or [])
        return self._fail(info)

    def _poll_rep(self, content: Any) -> PKIMessage:
        ids = [entry["certReqId"].native for entry in content]
        if not ids or any(i not in self._pending_ids for i in ids):
            raise BadRequest(f"pollRep for certReqIds {ids}, polled for {self._pending_ids}")
        check_after = max(entry["checkAfter"].native for entry in content)
        if check_after < 0:
            raise BadDataFormat(f"pollRep with negative checkAfter {check_after}")
        return self._poll(self._pending_ids, check_after)

    def _poll(self, wire_ids: list[int], check_after: int) -> PKIMessage:
        self.phase = Phase.polling
        self.check_after = check_after
        self.result.polls += 1
        if self._poll_base is None:
            self._poll_base = self._expected
        self._pending_ids = wire_ids
        self._expected = self._poll_base | {"pollRep"}
        body = PKIBody(name="pollReq", value=[{"certReqId": i} for i in wire_ids])
        return self._message(body)

    def _end_polling(self) -> None:
        self._poll_base = None
        self._pending_ids = []
        self.check_after = 0

    # ---- certificate responses ---------------------------------------------------------------

    def _cert_rep(self, message: PKIMessage) -> PKIMessage | None:
        self._end_polling()
        rep = message["body"].chosen
        if _present(rep["caPubs"]):
            self.result.ca_pubs = [_x509(c) for c in rep["caPubs"]]
        waiting: list[int] = []
        rejected: list[PKIStatusInfo] = []
        seen: set[int] = set()
        for response in rep["response"]:
            cert_req_id = self._own_id(response["certReqId"].native)
            if cert_req_id in seen or cert_req_id in self._answered:
                raise BadDataFormat(f"certReqId {cert_req_id} answered twice")
            seen.add(cert_req_id)
            info = response["status"]
            self.result.statuses[cert_req_id] = info
            status = info["status"].native
            if status == "waiting":
                waiting.append(self._wire_ids[cert_req_id])
                continue
            self._answered.add(cert_req_id)
            if status in ("accepted", "grantedWithMods"):
                certificate = self._certificate(cert_req_id, response)
                self._received[cert_req_id] = certificate
                reason = self._central_key(cert_req_id, response, certificate, message)
                if reason is None:
                    reason = self._judge(cert_req_id, certificate, message)
                if reason is not None:
                    self.result.rejected[cert_req_id] = reason
            elif status == "rejection":
                rejected.append(info)
            else:
                raise BadDataFormat(f"status {status} in a certificate response")
        unanswered = set(self._requested) - self._answered - {self._own_id(i) for i in waiting}
        if unanswered:
            raise BadDataFormat(f"no response for certReqId {sorted(unanswered)}")
        if waiting:
            return self._poll(waiting, 0)
        if not self._received:
            return self._fail(rejected[0] if rejected else None)
        if has_general_info(message["header"], "implicitConfirm"):
            # Granted: the server closed the transaction, no certConf (RFC 9810 5.1.1.1).
            self.result.implicit_confirm_granted = True
            if not self.result.rejected:
                return self._pkiconf()
            # A certificate refused without certConf to say so: tell the server with an error.
            text = _rejection_text(self.result.rejected)
            return self.report(FailInfo.incorrectData, text)
        self.phase = Phase.confirming
        self._expected = frozenset({"pkiconf"})
        self._negative_sent = bool(self.result.rejected)
        return self._message(self._cert_conf())

    def _own_id(self, wire_id: int) -> int:
        """The client's certReqId for one the server sent (a p10cr answer may use 0 or -1)."""
        if wire_id in self._requested:
            return wire_id
        if self.body_type == "p10cr" and wire_id == 0:
            self._wire_ids[P10CR_ID] = 0
            return P10CR_ID
        raise BadRequest(f"response for certReqId {wire_id}, which was never requested")

    def _certificate(self, cert_req_id: int, response: Any) -> x509.Certificate:
        pair = response["certifiedKeyPair"]
        if not _present(pair):
            raise BadDataFormat(f"accepted certReqId {cert_req_id} without a certificate")
        chosen = pair["certOrEncCert"]
        if chosen.name == "certificate":
            return _x509(chosen.chosen.untag())
        sealed = chosen.chosen
        if sealed.name != "envelopedData":
            raise BadDataFormat("encrypted certificate in EncryptedValue (deprecated) form")
        key = self._requested[cert_req_id].decryption_key
        if key is None:
            raise BadDataFormat(f"encrypted certificate for certReqId {cert_req_id}, no key")
        return _x509(Asn1Certificate.load(decrypt_certificate(sealed.chosen.untag(), key)))

    def _central_key(
        self, cert_req_id: int, response: Any, certificate: x509.Certificate, message: PKIMessage
    ) -> str | None:
        """Open the privateKey of a central key generation answer; why the certificate is
        refused (no key, or one that does not decrypt, verify or fit), or None."""
        wanted = self._requested[cert_req_id].central_keygen
        sealed = response["certifiedKeyPair"]["privateKey"]
        if not _present(sealed):
            return (
                "central key generation requested but no private key received" if wanted else None
            )
        if not wanted:
            return "a private key was sent but central key generation was not requested"
        if sealed.name != "envelopedData":
            return "private key in EncryptedValue (deprecated) form: not supported"
        try:
            env = EnvelopedData.load(sealed.chosen.untag().dump())
            opened = open_private_key(
                env,
                trust=self._kga_trust(),
                now=self.config.clock(),
                extra_certs=self.result.extra_certs,
                **self._key_opener(),
            )
        except CmpError as error:
            return f"private key not accepted: {error.text}"
        if not same_public_key(opened.private_key, certificate):
            return "the private key does not belong to the new certificate"
        self._keys[cert_req_id] = opened.private_key
        return None

    def _kga_trust(self) -> TrustConfig:
        config = self.config
        if config.kga_trust is not None:
            return config.kga_trust
        if config.trust is None:
            raise BadAlg("no trust anchors to verify the key generation authority with")
        return replace(config.trust, extended_key_usage=CMKGA)

    def _key_opener(self) -> dict[str, Any]:
        """How this client opens an enveloped key: its shared secret or its protection key."""
        credential = self.config.credential
        if isinstance(credential, MacCredential):
            return {"password": credential.secret}
        if isinstance(credential, SignatureCredential):
            key = credential.key
            if isinstance(key, RecipientPrivateKey):
                return {"decryption_key": key}
        raise BadAlg("no shared secret or decryption-capable key to open the private key with")

    def _judge(
        self, cert_req_id: int, certificate: x509.Certificate, message: PKIMessage
    ) -> str | None:
        """Why the client refuses a new certificate, or None to accept it."""
        spki = self._requested[cert_req_id].spki
        if spki is not None and _certificate_spki(certificate) != spki:
            return "public key in the new certificate is not the requested one"
        check = self.config.check_certificate
        return None if check is None else check(cert_req_id, certificate, message)

    def _cert_conf(self) -> PKIBody:
        statuses = []
        for cert_req_id, certificate in self._received.items():
            reason = self.result.rejected.get(cert_req_id)
            info = (
                status_info("accepted")
                if reason is None
                else status_info("rejection", FailInfo.incorrectData, reason)
            )
            der = certificate.public_bytes(Encoding.DER)
            statuses.append(
                CertStatus(
                    {
                        "certHash": cert_hash(der),
                        "certReqId": self._wire_ids[cert_req_id],
                        "statusInfo": info,
                    }
                )
            )
        return PKIBody(name="certConf", value=statuses)

    # ---- other responses ---------------------------------------------------------------------

    def _rev_rep(self, content: Any) -> PKIMessage | None:
        self._end_polling()
        statuses = list(content["status"])
        if len(statuses) != self._entries:
            raise BadDataFormat(f"rp with {len(statuses)} statuses for {self._entries} entries")
        self.result.statuses = dict(enumerate(statuses))
        if any(s["status"].native == "waiting" for s in statuses):
            raise BadDataFormat("status waiting in an rp (delayed delivery uses an error)")
        if all(s["status"].native == "rejection" for s in statuses):
            return self._fail(statuses[0])
        return self._done()

    def _pkiconf(self) -> PKIMessage | None:
        self._end_polling()
        accepted = {
            cert_req_id: certificate
            for cert_req_id, certificate in self._received.items()
            if cert_req_id not in self.result.rejected
        }
        self.result.certificates.update(accepted)
        self.result.private_keys.update({i: k for i, k in self._keys.items() if i in accepted})
        if self._reported and self.body_type != "error":
            self.phase = Phase.failed
            return None
        if self._received and not accepted:
            text = _rejection_text(self.result.rejected)
            return self._fail(status_info("rejection", FailInfo.incorrectData, text))
        return self._done()

    def _collect_extra_certs(self, message: PKIMessage) -> None:
        if not _present(message["extraCerts"]):
            return
        known = {c.public_bytes(Encoding.DER) for c in self.result.extra_certs}
        for cert in message["extraCerts"]:
            if cert.dump() not in known:
                known.add(cert.dump())
                self.result.extra_certs.append(_x509(cert))

    def _fail(self, info: PKIStatusInfo | None) -> PKIMessage | None:
        """The server refused (or the client refused everything): nothing more to send."""
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


def _error_body(fail_info: FailInfo, text: str, error_code: int | None) -> PKIBody:
    body = error_body(status_info("rejection", fail_info, text), text)
    if error_code is not None:
        body.chosen["errorCode"] = error_code
    return body


def _spki(spec: CertRequestSpec) -> bytes | None:
    if spec.key is not None:
        return spec.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if spec.public_key is not None:
        return spec.public_key
    if spec.decryption_key is not None:
        public = spec.decryption_key.public_key()
        return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return None


def _decryption_key(spec: CertRequestSpec) -> RecipientPrivateKey | None:
    if spec.decryption_key is not None:
        return spec.decryption_key
    key = spec.key
    return key if isinstance(key, RecipientPrivateKey) else None


def _is_rsa(spki: bytes) -> bool:
    return bool(PublicKeyInfo.load(spki)["algorithm"]["algorithm"].dotted == "1.2.840.113549.1.1.1")


def _template(spec: CertRequestSpec, spki: bytes | None, subject: x509.Name | None) -> CertTemplate:
    value: dict[str, object] = {}
    if spki is not None:
        value["publicKey"] = PublicKeyInfo.load(spki)
    if subject is not None:
        value["subject"] = Name.load(subject.public_bytes())
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
    # Each Extension is assembled from its parts: asn1crypto would re-parse extnValue by OID.
    items = b"".join(
        sequence(
            AsnObjectIdentifier(ext.oid.dotted_string).dump()
            + (Boolean(True).dump() if ext.critical else b"")
            + OctetString(ext.value.public_bytes()).dump()
        )
        for ext in extensions
    )
    return sequence(items)


def _encoded(value: CertRequest) -> CertRequest:
    """`value` as a lazy parse of its DER: encoded once, so that signing it and sending it
    (two `dump()`s) do not encode it twice."""
    loaded: CertRequest = CertRequest.load(value.dump())
    return loaded


def _body(name: str, content: bytes) -> PKIBody:
    """The PKIBody alternative `name` around the DER of its content."""
    body: PKIBody = PKIBody.load(explicit(BODY_TYPES.index(name), content))
    return body


def _old_cert_id(old: x509.Certificate) -> dict[str, object]:
    issuer = directory_name(old.issuer)
    return {"type": "oldCertID", "value": {"issuer": issuer, "serialNumber": old.serial_number}}


def _rev_details(entry: RevocationSpec) -> dict[str, object]:
    details: dict[str, object] = {
        "certDetails": {
            "issuer": Name.load(entry.issuer.public_bytes()),
            "serialNumber": entry.serial_number,
        }
    }
    if entry.reason is not None:
        # id-ce-cRLReasons by OID: asn1crypto's x509.ExtensionId only names certificate ones.
        reason = CRLReason(entry.reason).dump()
        details["crlEntryDetails"] = [
            {"extn_id": CRL_REASON_OID, "critical": False, "extn_value": reason}
        ]
    return details


def _rejection_text(rejected: dict[int, str]) -> str:
    return "; ".join(f"certReqId {i}: {reason}" for i, reason in sorted(rejected.items()))


def _same_name(a: GeneralName, b: GeneralName) -> bool:
    if a.name != b.name:
        return False
    if a.name == "directory_name":
        return bool(a.chosen == b.chosen)
    return bool(a.dump() == b.dump())


def _present(value: object) -> bool:
    # Not `.native`: that would parse (and may fail on) certificates asn1crypto cannot type.
    return not isinstance(value, Void)


def _certificate_spki(certificate: x509.Certificate) -> bytes:
    # The SPKI as encoded in the certificate (asn1crypto: no key typing, works for any algorithm).
    parsed = Asn1Certificate.load(certificate.public_bytes(Encoding.DER))
    return bytes(parsed["tbs_certificate"]["subject_public_key_info"].dump())


def _x509(certificate: Any) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(certificate.dump())
    except ValueError as exc:
        raise DecodeError(f"unusable certificate: {exc}") from None
