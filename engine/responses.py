"""Response bodies and headers (RFC 9810 5.1.1, 5.3): ip/cp/kup, rp, genp, pkiconf, pollRep, error.

Everything here is unprotected; the server engine protects the finished message.

Headers, bodies and messages are written as DER from parts encoded once (see `encode`) and come
back as lazily parsed asn1crypto values: building them field by field would make asn1crypto copy
every explicitly tagged part (a certificate inside CertOrEncCert, the body inside PKIBody) and
encode the header again when it is protected.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from asn1crypto.cms import EnvelopedData
from asn1crypto.core import Integer, Null
from asn1crypto.x509 import Certificate as AsnCertificate
from asn1crypto.x509 import GeneralName
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import Certificate

from .asn1 import (
    NULL_DN_DER,
    CertResponse,
    EncryptedKey,
    ErrorMsgContent,
    InfoTypeAndValue,
    InfoTypeAndValues,
    PKIBody,
    PKIHeader,
    PKIMessage,
    PKIStatusInfo,
    PollRep,
    RevRepContent,
    header_fields,
)
from .asn1.der import check_der_schema
from .encode import GENERALIZED_TIME, INTEGER, explicit, octet_string, sequence, tlv
from .errors import DecodeError, FailInfo

# Body of the response to each request type.
RESPONSE_TO = {"ir": "ip", "cr": "cp", "kur": "kup", "p10cr": "cp"}

# The [n] EXPLICIT tag number of each PKIBody alternative.
_BODY_TAGS = {name: params["explicit"] for name, _, params in PKIBody._alternatives}

# generalInfo (without its [8] tag) asking for or granting implicit confirmation.
IMPLICIT_CONFIRM_INFO = InfoTypeAndValues(
    [{"infoType": "implicitConfirm", "infoValue": Null()}]
).dump()


FailBits = FailInfo | frozenset[FailInfo] | None
"""No failInfo, one PKIFailureInfo bit, or several."""


def status_info(status: str, fail_info: FailBits = None, text: str = "") -> PKIStatusInfo:
    """PKIStatusInfo with optional failure bits and statusString."""
    bits = frozenset((fail_info,)) if isinstance(fail_info, FailInfo) else fail_info or frozenset()
    info: PKIStatusInfo = PKIStatusInfo.load(_status_info_der(status, bits, text))
    return info


@functools.lru_cache(maxsize=256)
def _status_info_der(status: str, bits: frozenset[FailInfo], text: str) -> bytes:
    """The DER of a PKIStatusInfo, encoded once per distinct value (most answers share a few)."""
    value: dict[str, object] = {"status": status}
    if text:
        value["statusString"] = [text]
    if bits:
        value["failInfo"] = {bit.name for bit in bits}
    return bytes(PKIStatusInfo(value).dump())


def response_header(
    request: PKIHeader,
    *,
    sender: GeneralName,
    sender_nonce: bytes,
    now: datetime,
    implicit_confirm: bool = False,
) -> PKIHeader:
    """The header of an answer to `request`: its pvno and transactionID, recipNonce = its nonce."""
    asked = header_fields(request)
    time = now.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode()
    fields = [
        bytes((INTEGER, 1, asked.pvno if asked.pvno in (2, 3) else 2)),
        sender.dump(),
        _recipient_of(asked.sender),
        explicit(0, tlv(GENERALIZED_TIME, time)),
    ]
    if asked.sender_kid is not None:
        fields.append(explicit(3, octet_string(asked.sender_kid)))
    if asked.transaction_id is not None:
        fields.append(explicit(4, octet_string(asked.transaction_id)))
    fields.append(explicit(5, octet_string(sender_nonce)))
    if asked.sender_nonce is not None:
        fields.append(explicit(6, octet_string(asked.sender_nonce)))
    if implicit_confirm:
        fields.append(explicit(8, IMPLICIT_CONFIRM_INFO))
    return PKIHeader(contents=b"".join(fields))


def unprotected_message(
    header: PKIHeader, body: PKIBody, extra_certs: Sequence[Certificate] = ()
) -> PKIMessage:
    """The PKIMessage of `header` and `body`, with `extra_certs` (if any) as its extraCerts."""
    parts = [header.dump(), body.dump()]
    if extra_certs:
        parts.append(explicit(1, sequence(*(c.public_bytes(Encoding.DER) for c in extra_certs))))
    return PKIMessage(contents=b"".join(parts))


def cert_response(
    cert_req_id: int,
    info: PKIStatusInfo,
    certificate: Certificate | None = None,
    encrypted: EnvelopedData | None = None,
    private_key: EnvelopedData | None = None,
) -> CertResponse:
    """One CertResponse: the certificate in clear, or encrypted (EnvelopedData), or none; with
    a centrally generated `private_key` (EnvelopedData) if there is one."""
    fields = [Integer(cert_req_id).dump(), info.dump()]
    pair = []  # CertifiedKeyPair
    if certificate is not None:
        pair.append(explicit(0, certificate.public_bytes(Encoding.DER)))  # CertOrEncCert
    elif encrypted is not None:
        pair.append(explicit(1, _enveloped_key(encrypted)))
    if pair and private_key is not None:
        pair.append(explicit(0, _enveloped_key(private_key)))
    if pair:
        fields.append(sequence(*pair))
    return CertResponse(contents=b"".join(fields))


def cert_rep_body(
    body_type: str, responses: Iterable[CertResponse], ca_pubs: Sequence[Certificate] = ()
) -> PKIBody:
    """An ip, cp or kup body."""
    fields = []
    if ca_pubs:
        fields.append(explicit(1, sequence(*(c.public_bytes(Encoding.DER) for c in ca_pubs))))
    fields.append(sequence(*(response.dump() for response in responses)))
    return _body(body_type, sequence(*fields))


def rev_rep_body(statuses: Iterable[PKIStatusInfo]) -> PKIBody:
    """An rp body with one status per RevDetails of the rr."""
    return _body("rp", RevRepContent({"status": list(statuses)}).dump())


def genp_body(items: Iterable[InfoTypeAndValue]) -> PKIBody:
    """A genp body (may be empty)."""
    return _body("genp", InfoTypeAndValues(list(items)).dump())


def pkiconf_body() -> PKIBody:
    """The pkiconf body (NULL)."""
    return _body("pkiconf", b"\x05\x00")  # NULL


def poll_rep_body(cert_req_ids: Iterable[int], check_after: int, reason: str = "") -> PKIBody:
    """A pollRep body: ask again after `check_after` seconds for each certReqId."""
    entries = []
    for cert_req_id in cert_req_ids:
        entry: dict[str, object] = {"certReqId": cert_req_id, "checkAfter": check_after}
        if reason:
            entry["reason"] = [reason]
        entries.append(PollRep(entry).dump())
    return _body("pollRep", sequence(*entries))


def error_body(info: PKIStatusInfo, error_details: str = "") -> PKIBody:
    """An error body; errorDetails repeats the text for clients that show only that field."""
    value: dict[str, object] = {"pKIStatusInfo": info}
    if error_details:
        value["errorDetails"] = [error_details]
    return _body("error", ErrorMsgContent(value).dump())


def asn1_certificate(certificate: Certificate) -> AsnCertificate:
    """The asn1crypto view of a `cryptography` certificate (same DER)."""
    return AsnCertificate.load(certificate.public_bytes(Encoding.DER))


def _body(name: str, content: bytes) -> PKIBody:
    """The PKIBody alternative `name` around the DER of its content."""
    body: PKIBody = PKIBody.load(explicit(_BODY_TAGS[name], content))
    return body


def _enveloped_key(enveloped: EnvelopedData) -> bytes:
    """The DER of EncryptedKey's envelopedData alternative ([0] IMPLICIT EnvelopedData)."""
    encoded: bytes = EncryptedKey(name="envelopedData", value=enveloped).dump()
    return encoded


def _recipient_of(sender: bytes) -> bytes:
    """The request's sender, if it is a GeneralName in DER; else NULL-DN (a header salvaged from
    a broken message may carry a broken name, which must not be copied into the answer)."""
    try:
        check_der_schema(GeneralName, sender)
    except DecodeError:
        return NULL_DN_DER
    return sender
