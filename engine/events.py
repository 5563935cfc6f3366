"""The event API: facts the engine reports about a request, and the decisions an application makes.

Inbound facts are past tense (`CertificatesRequested`); decisions are verbs (`Issue`, `Reject`,
`Defer`). The engine does all generic CMP work; the application only decides. No callbacks needed:

    inbound = engine.receive(request_der)
    response = inbound.response if isinstance(inbound, Answered) else engine.respond(inbound, ...)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from asn1crypto.csr import CertificationRequest
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509 import Certificate

from .asn1 import (
    CertReqMsg,
    CertTemplate,
    InfoTypeAndValue,
    PKIFreeText,
    PKIMessage,
    PKIStatusInfo,
)
from .errors import FailInfo
from .transaction import Transaction

if TYPE_CHECKING:
    from .popo import PopoResult
    from .protection import VerifiedProtection


@dataclass(frozen=True)
class ClientIdentity:
    """Who sent a request, as far as its protection proves it."""

    protection: str  # "mac", "signature" or "none"
    sender: bytes  # DER of the header's sender GeneralName
    sender_kid: bytes | None = None
    certificate: Certificate | None = None  # the validated signer certificate, for "signature"
    chain: tuple[Certificate, ...] = ()  # its validated path, up to the trust anchor
    verified: VerifiedProtection | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def key(self) -> bytes:
        """A stable byte string naming this client, to bind a transaction to it (computed once:
        it is asked for several times per request)."""
        if self.certificate is not None:
            return b"cert:" + self.certificate.fingerprint(SHA256())
        if self.protection == "mac" and self.sender_kid is not None:
            return b"kid:" + self.sender_kid
        return b"sender:" + self.sender


# ---- inbound facts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """A verified request the application must decide on; `message` is the request as received.

    Each is answered once: `respond` refuses an event whose transaction has moved on since (it was
    answered already, expired, or another request with its transactionID was answered first).
    """

    transaction_id: bytes
    message: PKIMessage
    client: ClientIdentity
    transaction: Transaction  # the record the engine moves along when responding
    version: int = field(default=0, kw_only=True)  # `transaction.version` when received


@dataclass(frozen=True)
class RequestedCertificate:
    """One certificate request of an ir/cr/kur (one CertReqMsg) or a p10cr (certReqId -1)."""

    cert_req_id: int
    template: CertTemplate | None  # None for p10cr
    cert_req_msg: CertReqMsg | None  # None for p10cr
    csr: CertificationRequest | None  # only for p10cr
    popo: PopoResult  # how possession of the key was proven (verified by the engine)
    # no key and no POPO (RFC 9483 4.1.6): issue with `Issue(..., private_key=...)`; the wanted
    # algorithm, if the client named one, is the template's publicKey (its key bits empty)
    central_keygen: bool = False


@dataclass(frozen=True)
class CertificatesRequested(Inbound):
    """An ir, cr, kur or p10cr: issue, reject or defer each request."""

    body_type: str
    requests: tuple[RequestedCertificate, ...]  # one decision each, in this order
    implicit_confirm_requested: bool
    # requests the engine refused itself (e.g. badPOP); answered with rejection, no decision
    refused: tuple[tuple[int, Reject], ...] = ()


@dataclass(frozen=True)
class RevocationRequested(Inbound):
    """An rr: one decision per RevDetails, in order."""

    entries: tuple[CertTemplate, ...]  # the certDetails of each RevDetails
    reasons: tuple[int | None, ...]  # CRL reason code per entry, where given


@dataclass(frozen=True)
class GeneralMessageReceived(Inbound):
    """A genm: answer with a genp (possibly empty)."""

    items: tuple[InfoTypeAndValue, ...]


@dataclass(frozen=True)
class ErrorReported(Inbound):
    """The client reported an error; the engine answers pkiconf and ends the transaction."""

    status_info: PKIStatusInfo
    error_code: int | None
    error_details: PKIFreeText | None
    unconfirmed: tuple[Certificate, ...] = ()  # issued in this transaction, never confirmed


@dataclass(frozen=True)
class ConfirmedCertificate:
    """One CertStatus of a certConf whose certHash matched a certificate of this transaction."""

    cert_req_id: int
    certificate: Certificate
    accepted: bool  # False: the client rejected the certificate
    status_info: PKIStatusInfo | None


@dataclass(frozen=True)
class CertificatesConfirmed(Inbound):
    """A certConf; unconfirmed certificates (not listed) are in `unconfirmed`."""

    confirmations: tuple[ConfirmedCertificate, ...]
    unconfirmed: tuple[Certificate, ...]


@dataclass(frozen=True)
class PollReceived(Inbound):
    """A pollReq for a deferred request: decide it now (like the original) or `Defer` again."""

    original: Inbound  # the deferred request, as first received


@dataclass(frozen=True)
class TransactionExpired:
    """A transaction timed out; `unconfirmed` are certificates issued but never confirmed."""

    transaction_id: bytes
    request_type: str
    state: str
    unconfirmed: tuple[Certificate, ...]


# ---- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """Grant one certificate request."""

    certificate: Certificate
    chain: tuple[Certificate, ...] = ()  # extraCerts after the protection cert
    ca_pubs: tuple[Certificate, ...] = ()
    with_modifications: bool = False  # status grantedWithMods
    encrypt: bool = False  # return it in EnvelopedData (indirect POP, encrCert)
    # sent instead of accepted/grantedWithMods, e.g. keyUpdateWarning or a statusString
    status_info: PKIStatusInfo | None = None
    # the key generated for a central key generation request: sent signed by the server (the
    # KGA) and encrypted for the requester; it must belong to `certificate`
    private_key: PrivateKeyTypes | None = None


@dataclass(frozen=True)
class Reject:
    """Refuse one request (or the whole message) with failure bits and a text."""

    fail_info: FailInfo | frozenset[FailInfo] | None  # one bit, several, or none
    text: str = ""


@dataclass(frozen=True)
class Defer:
    """Not decided yet: the client must poll (status waiting, then pollRep with checkAfter)."""

    check_after: int = 1  # seconds
    reason: str = ""


@dataclass(frozen=True)
class Revoked:
    """An rr entry was carried out (status accepted, or revocationWarning/Notification)."""

    status: str = "accepted"
    status_info: PKIStatusInfo | None = None  # sent instead of `status`, e.g. with a statusString


@dataclass(frozen=True)
class GeneralResponse:
    """The genp content."""

    items: Sequence[InfoTypeAndValue] = field(default_factory=tuple)


@dataclass(frozen=True)
class Acknowledge:
    """Accept a certConf or an error message: the answer is pkiconf."""


CertDecision = Issue | Reject
RevDecision = Revoked | Reject
Decision = Defer | Reject | Acknowledge | GeneralResponse | Sequence[CertDecision | RevDecision]
