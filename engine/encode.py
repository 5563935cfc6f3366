"""DER writing for outgoing messages: assemble values from parts that are already encoded.

asn1crypto rebuilds and copies a value for every field it is set into (an explicitly tagged
alternative or field is copied whole) and re-encodes mutated values on each `dump`. Responses are
therefore put together here as bytes, from parts encoded once (certificates as they are, headers
and bodies as built), and handed out as lazily parsed asn1crypto values of that DER.

Only low tag numbers (< 31) occur in CMP's own types, and these helpers support only those.
"""

from __future__ import annotations

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV: the identifier octet `tag`, the definite length, then `content`."""
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def sequence(*parts: bytes) -> bytes:
    """SEQUENCE (or SEQUENCE OF) of the encoded `parts`, in order."""
    return tlv(SEQUENCE, b"".join(parts))


def explicit(number: int, encoded: bytes) -> bytes:
    """`[number] EXPLICIT` around the complete encoding of a value."""
    return tlv(0xA0 | number, encoded)


def octet_string(value: bytes) -> bytes:
    """OCTET STRING `value`."""
    return tlv(OCTET_STRING, value)


def split(content: bytes) -> list[bytes]:
    """The complete TLVs one after another in `content` (e.g. a SEQUENCE's contents).

    For DER this module or asn1crypto wrote (definite lengths, tag numbers below 31); anything
    else raises `ValueError`.
    """
    parts = []
    offset = 0
    end = len(content)
    while offset < end:
        start = offset
        if content[offset] & 0x1F == 0x1F:
            raise ValueError("high tag numbers are not supported")
        if offset + 2 > end:
            raise ValueError("truncated TLV")
        first = content[offset + 1]
        offset += 2
        if first < 0x80:
            length = first
        elif first == 0x80:
            raise ValueError("indefinite length")
        else:
            count = first & 0x7F
            length = int.from_bytes(content[offset : offset + count], "big")
            offset += count
        offset += length
        if offset > end:
            raise ValueError("truncated TLV")
        parts.append(content[start:offset])
    return parts


def contents_of(encoded: bytes) -> bytes:
    """The contents octets of one complete TLV (for example the value inside an explicit tag)."""
    first = encoded[1]
    if first < 0x80:
        return encoded[2:]
    return encoded[2 + (first & 0x7F) :]
