"""Generic checks on a request header (RFC 9810 5.1.1, RFC 9483 3.1): as OpenSSL does, and stricter.

Each check raises the error whose failInfo bit the RFC names for it; none has side effects except
remembering the senderNonce, done last so that a rejected message does not burn a nonce.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .asn1 import NULL_DN_DER, PKIHeader, header_fields
from .errors import (
    BadRecipientNonce,
    BadRequest,
    BadSenderNonce,
    BadTime,
    UnsupportedVersion,
    WrongAuthority,
)
from .store import NonceStore

SUPPORTED_PVNOS = frozenset({2, 3})


@dataclass(frozen=True)
class HeaderPolicy:
    """Tunable strictness of the generic checks."""

    min_nonce_length: int = 16  # RFC 9483 3.1: at least 128 bits
    max_time_skew: timedelta | None = timedelta(minutes=10)  # None: messageTime not checked
    nonce_memory: timedelta = timedelta(hours=1)  # how long a senderNonce counts as used
    server_names: tuple[bytes, ...] = ()  # DER GeneralNames the server answers to (recipient)


def check_version(header: PKIHeader) -> int:
    """pvno must be 2 (cmp2000) or 3 (cmp2021); the answer uses the request's."""
    pvno = header_fields(header).pvno
    if pvno not in SUPPORTED_PVNOS:
        raise UnsupportedVersion(f"pvno {pvno} not supported; 2 and 3 are")
    assert pvno is not None
    return pvno


def check_header(header: PKIHeader, policy: HeaderPolicy, now: datetime) -> None:
    """transactionID, senderNonce, recipient and messageTime of any request."""
    fields = header_fields(header)
    if not fields.transaction_id:
        raise BadRequest("transactionID missing")
    nonce = fields.sender_nonce
    if nonce is None or len(nonce) < policy.min_nonce_length:
        raise BadSenderNonce(f"senderNonce missing or shorter than {policy.min_nonce_length} bytes")
    recipient = fields.recipient
    if policy.server_names and recipient != NULL_DN_DER and recipient not in policy.server_names:
        raise WrongAuthority("recipient names another CA")
    sent = fields.message_time
    if (
        policy.max_time_skew is not None
        and sent is not None
        and abs(sent - now) > policy.max_time_skew
    ):
        raise BadTime(f"messageTime {sent.isoformat()} too far from server time")


def check_recip_nonce(header: PKIHeader, expected: bytes) -> None:
    """A follow-up message (certConf, pollReq, error) must echo our last senderNonce."""
    if header_fields(header).recip_nonce != expected:
        raise BadRecipientNonce("recipNonce does not match the last response's senderNonce")


def remember_nonce(
    header: PKIHeader, nonces: NonceStore, policy: HeaderPolicy, now: datetime
) -> None:
    """Refuse a senderNonce seen before: the request is a replay."""
    nonce = header_fields(header).sender_nonce
    if nonce is None:
        raise BadSenderNonce("senderNonce missing")
    if not nonces.remember(nonce, now + policy.nonce_memory, now):
        raise BadSenderNonce("senderNonce was used before (replayed request)")
