"""Response bodies and headers (RFC 9810 5.1.1, 5.3): ip/cp/kup, rp, genp, pkiconf, pollRep, error.

Everything here is unprotected; the server engine protects the finished message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from asn1crypto.cms import EnvelopedData
from asn1crypto.core import Null
from asn1crypto.x509 import Certificate as AsnCertificate
from asn1crypto.x509 import GeneralName
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import Certificate

from .asn1 import (
    CertOrEncCert,
    CertRepMessage,
    CertResponse,
    EncryptedKey,
    ErrorMsgContent,
    InfoTypeAndValue,
    PKIBody,
    PKIHeader,
    PKIStatusInfo,
    PollRep,
    null_dn,
)
from .errors import FailInfo

# Body of the response to each request type.
RESPONSE_TO = {"ir": "ip", "cr": "cp", "kur": "kup", "p10cr": "cp"}


FailBits = FailInfo | frozenset[FailInfo] | None
"""No failInfo, one PKIFailureInfo bit, or several."""


def status_info(status: str, fail_info: FailBits = None, text: str = "") -> PKIStatusInfo:
    """PKIStatusInfo with optional failure bits and statusString."""
    value: dict[str, object] = {"status": status}
    if text:
        value["statusString"] = [text]
    bits = {fail_info} if isinstance(fail_info, FailInfo) else fail_info
    if bits:
        value["failInfo"] = {bit.name for bit in bits}
    return PKIStatusInfo(value)


def response_header(
    request: PKIHeader,
    *,
    sender: GeneralName,
    sender_nonce: bytes,
    now: datetime,
    implicit_confirm: bool = False,
) -> PKIHeader:
    """The header of an answer to `request`: its pvno and transactionID, recipNonce = its nonce."""
    value: dict[str, object] = {
        "pvno": _pvno_of(request),
        "sender": sender,
        "recipient": _recipient_of(request),
        "messageTime": now.astimezone(UTC).replace(microsecond=0),
        "senderNonce": sender_nonce,
    }
    if request["transactionID"].native is not None:
        value["transactionID"] = request["transactionID"].native
    if request["senderNonce"].native is not None:
        value["recipNonce"] = request["senderNonce"].native
    if request["senderKID"].native is not None:
        value["recipKID"] = request["senderKID"].native
    if implicit_confirm:
        value["generalInfo"] = [{"infoType": "implicitConfirm", "infoValue": Null()}]
    return PKIHeader(value)


def cert_response(
    cert_req_id: int,
    info: PKIStatusInfo,
    certificate: Certificate | None = None,
    encrypted: EnvelopedData | None = None,
) -> CertResponse:
    """One CertResponse: the certificate in clear, or encrypted (EnvelopedData), or none."""
    value: dict[str, object] = {"certReqId": cert_req_id, "status": info}
    if certificate is not None:
        chosen = CertOrEncCert(name="certificate", value=asn1_certificate(certificate))
        value["certifiedKeyPair"] = {"certOrEncCert": chosen}
    elif encrypted is not None:
        sealed = EncryptedKey(name="envelopedData", value=encrypted)
        value["certifiedKeyPair"] = {
            "certOrEncCert": CertOrEncCert(name="encryptedCert", value=sealed)
        }
    return CertResponse(value)


def cert_rep_body(
    body_type: str, responses: Iterable[CertResponse], ca_pubs: Sequence[Certificate] = ()
) -> PKIBody:
    """An ip, cp or kup body."""
    value: dict[str, object] = {"response": list(responses)}
    if ca_pubs:
        value["caPubs"] = [asn1_certificate(c) for c in ca_pubs]
    return PKIBody(name=body_type, value=CertRepMessage(value))


def rev_rep_body(statuses: Iterable[PKIStatusInfo]) -> PKIBody:
    """An rp body with one status per RevDetails of the rr."""
    return PKIBody(name="rp", value={"status": list(statuses)})


def genp_body(items: Iterable[InfoTypeAndValue]) -> PKIBody:
    """A genp body (may be empty)."""
    return PKIBody(name="genp", value=list(items))


def pkiconf_body() -> PKIBody:
    """The pkiconf body (NULL)."""
    return PKIBody(name="pkiconf", value=Null())


def poll_rep_body(cert_req_ids: Iterable[int], check_after: int, reason: str = "") -> PKIBody:
    """A pollRep body: ask again after `check_after` seconds for each certReqId."""
    entries = []
    for cert_req_id in cert_req_ids:
        entry: dict[str, object] = {"certReqId": cert_req_id, "checkAfter": check_after}
        if reason:
            entry["reason"] = [reason]
        entries.append(PollRep(entry))
    return PKIBody(name="pollRep", value=entries)


def error_body(info: PKIStatusInfo, error_details: str = "") -> PKIBody:
    """An error body; errorDetails repeats the text for clients that show only that field."""
    value: dict[str, object] = {"pKIStatusInfo": info}
    if error_details:
        value["errorDetails"] = [error_details]
    return PKIBody(name="error", value=ErrorMsgContent(value))


def asn1_certificate(certificate: Certificate) -> AsnCertificate:
    """The asn1crypto view of a `cryptography` certificate (same DER)."""
    return AsnCertificate.load(certificate.public_bytes(Encoding.DER))


def _pvno_of(request: PKIHeader) -> int:
    pvno = request["pvno"].native
    return pvno if pvno in (2, 3) else 2


def _recipient_of(request: PKIHeader) -> GeneralName:
    sender = request["sender"]
    return sender if isinstance(sender, GeneralName) and sender.name else null_dn()
