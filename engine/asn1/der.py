"""Strict DER decoding: the one place where asn1crypto's parse errors become `DecodeError`.

asn1crypto parses lazily and accepts BER. CMP protection and POPO signatures are computed over DER
(RFC 9810 5.1.3, RFC 4211 4.1), so a message is accepted only if it is entirely DER, with no
trailing bytes, and every part parses now, not later when a handler happens to touch it.
"""

from __future__ import annotations

from typing import TypeVar

from asn1crypto import parser
from asn1crypto.core import Asn1Value

from ..errors import DecodeError

T = TypeVar("T", bound=Asn1Value)

# asn1crypto raises whatever its conversions raise on malformed input (ValueError, TypeError,
# KeyError, OverflowError, even AttributeError for some universal types inside `Any`): this is the
# parser boundary, so every exception of the parse becomes the one documented DecodeError.
_PARSE_ERRORS = (Exception,)


def load_der(spec: type[T], data: bytes) -> T:
    """Parse `data` as `spec`, requiring complete, canonical DER; raise `DecodeError` otherwise."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        value: T = Asn1Value.load.__func__(spec, data, strict=True)
        # Re-encoding parses every nested field; equal bytes prove the input was canonical DER.
        canonical = value.dump(force=True)
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed {spec.__name__}: {exc}") from None
    if canonical != data:
        raise DecodeError(f"{spec.__name__} is not DER encoded")
    return value


def load_lenient(spec: type[T], data: bytes) -> T:
    """Parse `data` as `spec` accepting BER and trailing bytes, yet parsing every field now.

    For salvage only (e.g. the header of a broken message), never for data that is verified.
    """
    try:
        value: T = Asn1Value.load.__func__(spec, bytes(data))
        value.native  # noqa: B018  (forces the lazy parse of every field inside the try)
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed {spec.__name__}: {exc}") from None
    return value


def first_inner_element(data: bytes) -> bytes | None:
    """The first TLV inside an outer SEQUENCE, without trusting the outer length (salvage only)."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    start = 2 + (data[1] & 0x7F if data[1] > 0x80 else 0)
    try:
        _class, _method, _tag, head, content, trailer = parser.parse(bytes(data[start:]))
    except _PARSE_ERRORS:
        return None
    return bytes(head + content + trailer)
