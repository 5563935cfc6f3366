"""Strict DER decoding: the one place where asn1crypto's parse errors become `DecodeError`.

asn1crypto parses lazily and accepts BER. CMP protection and POPO signatures are computed over DER
(RFC 9810 5.1.3, RFC 4211 4.1), so a message is accepted only if it is entirely DER, with no
trailing bytes, and every part parses now, not later when a handler happens to touch it.
"""

from __future__ import annotations

from typing import TypeVar

from asn1crypto import parser
from asn1crypto.core import Asn1Value, Sequence

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
    check_der_framing(data)  # every TLV, including opaque (`Any`) values asn1crypto never parses
    try:
        value: T = Asn1Value.load.__func__(spec, data, strict=True)
        # Re-encoding parses every nested field; equal bytes prove the input was canonical DER.
        canonical = value.dump(force=True)
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed {spec.__name__}: {exc}") from None
    if canonical != data:
        raise DecodeError(f"{spec.__name__} is not DER encoded")
    return value


MAX_DEPTH = 64  # nesting of constructed encodings; CMP needs ~20, certificates inside included
_STRING_TAGS = frozenset({3, 4, 12, 18, 19, 20, 21, 22, 25, 26, 27, 28, 30})  # primitive in DER


def check_der_framing(data: bytes) -> None:
    """Raise `DecodeError` unless `data` is one DER TLV whose every nested TLV is DER too.

    Checks what re-encoding cannot see inside values kept opaque: definite, minimal lengths;
    minimal high tag numbers; strings and primitives primitive, SEQUENCE/SET constructed; and
    the canonical forms of BOOLEAN, INTEGER, ENUMERATED, NULL, BIT STRING and OID contents.
    """
    end = _tlv(data, 0, len(data), 0)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} bytes of trailing data")


def _tlv(data: bytes, pos: int, limit: int, depth: int) -> int:
    """Check the TLV at `pos` (within `limit`); return where it ends."""
    if depth > MAX_DEPTH:
        raise DecodeError("encoding nested too deeply")
    if pos >= limit:
        raise DecodeError("truncated: tag expected")
    first = data[pos]
    pos += 1
    cls, constructed, number = first >> 6, bool(first & 0x20), first & 0x1F
    if number == 0x1F:  # high tag number: base 128, no leading zero digit, >= 31
        number = 0
        if pos < limit and data[pos] == 0x80:
            raise DecodeError("non-minimal tag number")
        while True:
            if pos >= limit:
                raise DecodeError("truncated tag number")
            byte = data[pos]
            pos += 1
            number = number << 7 | byte & 0x7F
            if not byte & 0x80:
                break
        if number < 31:
            raise DecodeError("high tag number form for a low tag number")
    if pos >= limit:
        raise DecodeError("truncated: length expected")
    length = data[pos]
    pos += 1
    if length == 0x80:
        raise DecodeError("indefinite length")
    if length & 0x80:
        size = length & 0x7F
        if size > 4 or pos + size > limit:
            raise DecodeError("length field too long or truncated")
        length = int.from_bytes(data[pos : pos + size], "big")
        if length < 0x80 or data[pos] == 0:
            raise DecodeError("non-minimal length")
        pos += size
    end = pos + length
    if end > limit:
        raise DecodeError("value runs past its container")
    if constructed:
        if cls == 0 and number in _STRING_TAGS | {1, 2, 5, 6, 10}:
            raise DecodeError(f"constructed encoding of universal type {number}")
        while pos < end:
            pos = _tlv(data, pos, end, depth + 1)
    elif cls == 0:
        _primitive(number, data[pos:end])
    return end


def _primitive(number: int, content: bytes) -> None:
    """Canonical DER contents of the universal primitive types whose form DER fixes."""
    if number in (16, 17):
        raise DecodeError("SEQUENCE or SET in primitive form")
    if number == 1 and (len(content) != 1 or content[0] not in (0x00, 0xFF)):
        raise DecodeError("BOOLEAN not 00 or FF")
    if number in (2, 10) and (
        not content
        or (len(content) > 1 and content[0] == 0x00 and content[1] < 0x80)
        or (len(content) > 1 and content[0] == 0xFF and content[1] >= 0x80)
    ):
        raise DecodeError("INTEGER not minimally encoded")
    if number == 5 and content:
        raise DecodeError("NULL with contents")
    if number == 3 and (
        not content
        or content[0] > 7
        or (len(content) == 1 and content[0] != 0)
        or (len(content) > 1 and content[-1] & ((1 << content[0]) - 1))
    ):
        raise DecodeError("BIT STRING with bad unused bits")
    if number == 6 and (not content or content[-1] & 0x80 or _non_minimal_arc(content)):
        raise DecodeError("malformed OBJECT IDENTIFIER")


def _non_minimal_arc(content: bytes) -> bool:
    """Whether an OID subidentifier starts with a 0x80 (a leading zero digit)."""
    starts = [0] + [i + 1 for i, byte in enumerate(content[:-1]) if not byte & 0x80]
    return any(content[i] == 0x80 for i in starts)


class _AnyTagOrClass:
    """Equal to every tag, class and method: lets a `RawValue` stand for any received element."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


class RawValue(Asn1Value):
    """An open-type value (infoValue, control value, parameters) whose type no registry names.

    Kept as the DER element it arrived as and never parsed generically (asn1crypto's generic
    parser cannot read SETs or context-tagged contents); `check_der_framing` has checked its
    encoding. `.native` is those DER bytes, and dumping returns them unchanged.
    """

    class_ = method = tag = _AnyTagOrClass()

    @property
    def native(self) -> bytes | None:
        """The DER bytes; None when absent or NULL (as asn1crypto's own `Null.native`)."""
        if self.contents is None:
            return None
        encoded = bytes((self._header or b"") + self.contents + (self._trailer or b""))
        return None if encoded == b"\x05\x00" else encoded

    def dump(self, force: bool = False) -> bytes:
        return bytes((self._header or b"") + (self.contents or b"") + (self._trailer or b""))


class OpenTypeSequence(Sequence):
    """A SEQUENCE with an open-type field: a value given for an unregistered type becomes a
    `RawValue` of its DER, so messages can be built with any asn1crypto value there."""

    def _make_value(
        self,
        field_name: str,
        field_spec: type,
        value_spec: type,
        field_params: dict[str, object],
        value: object,
    ) -> Asn1Value:
        if value_spec is RawValue and isinstance(value, Asn1Value) and type(value) is not RawValue:
            value = RawValue.load(value.dump())
        made: Asn1Value = super()._make_value(
            field_name, field_spec, value_spec, field_params, value
        )
        return made


class OpenTypeRegistry(dict[str, type]):
    """`_oid_specs` of an open type: registered value types by OID name, `RawValue` otherwise."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> type:
        return RawValue


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
