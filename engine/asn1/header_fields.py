"""A PKIHeader's fields read straight from its DER, once per header object.

The engine reads a request's header a dozen times (version, nonces, authentication, the answer's
header); asn1crypto builds an object for each field and converts it again on every `.native`. A
header in DER (every received one: `PKIMessage.load` has proven it) is read here in one pass over
its octets; any other (a header salvaged from a broken message, one built natively) is read
through asn1crypto, with the same results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ..encode import contents_of, split
from ..memo import IDENTIFIER_BYTES, remembered
from .cmp import InfoType, PKIHeader
from .der import oid_dotted

_OCTET_STRING = 0x04
_GENERALIZED_TIME = 0x18
_CANONICAL_TIME = re.compile(rb"(\d{14})(?:\.(\d{0,5}[1-9]))?Z")
_NAME_TAGS = frozenset({0x80, 0x81, 0x82, 0x83, 0xA3, 0xA4, 0xA5, 0x86, 0x87, 0x88})  # GeneralName
_CACHE = "_sanscmp_header_fields"  # attribute of the header object: (its contents, its fields)


@dataclass(frozen=True, slots=True)
class HeaderFields:
    """What the engine reads of a header: names and algorithm as DER, the rest as values."""

    pvno: int | None
    sender: bytes  # DER GeneralName
    recipient: bytes  # DER GeneralName
    message_time: datetime | None
    protection_alg: bytes | None  # DER AlgorithmIdentifier
    sender_kid: bytes | None
    recip_kid: bytes | None
    transaction_id: bytes | None
    sender_nonce: bytes | None
    recip_nonce: bytes | None
    general_info: tuple[str, ...]  # infoType of each generalInfo entry: its name, or dotted OID


def header_fields(header: PKIHeader) -> HeaderFields:
    """The fields of `header`, read once (again only if the header was changed since)."""
    # Its contents, not `dump()`: asn1crypto takes a length whose last octet is 0x80 (e.g. 128)
    # for an indefinite one and would re-encode the whole header.
    contents = header.contents
    cached: tuple[bytes, HeaderFields] | None = getattr(header, _CACHE, None)
    if cached is not None and cached[0] == contents:
        return cached[1]
    try:
        fields = _read_der(contents)
    except (ValueError, IndexError, TypeError):
        fields = _read_parsed(header)
    setattr(header, _CACHE, (contents, fields))
    return fields


def has_general_info(header: PKIHeader, info_type: str) -> bool:
    """Whether the header's generalInfo carries an entry of `info_type` (e.g. implicitConfirm)."""
    return info_type in header_fields(header).general_info


def _read_der(contents: bytes) -> HeaderFields:
    """The fields of a header (its SEQUENCE's contents) in DER order and form; `ValueError` for
    anything else."""
    parts = split(contents)
    if len(parts) < 3 or parts[0][0] != 0x02:
        raise ValueError("pvno, sender, recipient expected")
    if parts[1][0] not in _NAME_TAGS or parts[2][0] not in _NAME_TAGS:
        raise ValueError("sender and recipient must be GeneralNames")
    tagged: dict[int, bytes] = {}
    last = -1
    for part in parts[3:]:
        number = part[0] - 0xA0
        if not last < number <= 8:
            raise ValueError("optional fields out of order")
        inner = split(contents_of(part))
        if len(inner) != 1:  # a salvaged header may hold more (or less) inside a tag
            raise ValueError("an explicit tag must hold exactly one value")
        tagged[number] = inner[0]
        last = number
    return HeaderFields(
        pvno=int.from_bytes(contents_of(parts[0]), "big", signed=True),
        sender=parts[1],
        recipient=parts[2],
        message_time=_time(tagged[0]) if 0 in tagged else None,
        protection_alg=tagged.get(1),
        sender_kid=_octets(tagged.get(2)),
        recip_kid=_octets(tagged.get(3)),
        transaction_id=_octets(tagged.get(4)),
        sender_nonce=_octets(tagged.get(5)),
        recip_nonce=_octets(tagged.get(6)),
        general_info=_info_types(tagged[8]) if 8 in tagged else (),
    )


def _octets(encoded: bytes | None) -> bytes | None:
    if encoded is None:
        return None
    if encoded[0] != _OCTET_STRING:
        raise ValueError("OCTET STRING expected")
    return contents_of(encoded)


def _time(encoded: bytes) -> datetime:
    """A GeneralizedTime in DER's one form: YYYYMMDDhhmmss[.f]Z."""
    if encoded[0] != _GENERALIZED_TIME:
        raise ValueError("GeneralizedTime expected")
    match = _CANONICAL_TIME.fullmatch(contents_of(encoded))
    if match is None:
        raise ValueError("GeneralizedTime not in DER form")
    digits, fraction = match.groups()
    year, month, day, hour, minute, second = (int(digits[i : i + 2]) for i in range(2, 14, 2))
    micros = int((fraction or b"0").ljust(6, b"0"))
    return datetime(
        int(digits[:2]) * 100 + year, month, day, hour, minute, second, micros, tzinfo=UTC
    )


def _info_types(encoded: bytes) -> tuple[str, ...]:
    """The infoType of each InfoTypeAndValue in a SEQUENCE OF them."""
    if encoded[0] != 0x30:
        raise ValueError("SEQUENCE OF InfoTypeAndValue expected")
    names = []
    for entry in split(contents_of(encoded)):
        if entry[0] != 0x30:
            raise ValueError("InfoTypeAndValue expected")
        oid = split(contents_of(entry))[0]
        if oid[0] != 0x06:
            raise ValueError("infoType expected")
        names.append(_info_type_name(contents_of(oid)))
    return tuple(names)


@remembered(maxsize=256, max_key_size=IDENTIFIER_BYTES)
def _info_type_name(contents: bytes) -> str:
    """The name asn1crypto gives an infoType (its dotted form if unnamed)."""
    dotted = oid_dotted(contents)
    return InfoType._map.get(dotted, dotted)


def _read_parsed(header: PKIHeader) -> HeaderFields:
    """The same fields through asn1crypto, for a header not in DER."""
    infos = header["generalInfo"]
    protection_alg = header["protectionAlg"]
    return HeaderFields(
        pvno=header["pvno"].native,
        sender=header["sender"].dump(),
        recipient=header["recipient"].dump(),
        message_time=header["messageTime"].native,
        protection_alg=None
        if protection_alg.native is None
        else contents_of(protection_alg.dump()),
        sender_kid=header["senderKID"].native,
        recip_kid=header["recipKID"].native,
        transaction_id=header["transactionID"].native,
        sender_nonce=header["senderNonce"].native,
        recip_nonce=header["recipNonce"].native,
        general_info=tuple(i["infoType"].native for i in infos) if infos.native else (),
    )
