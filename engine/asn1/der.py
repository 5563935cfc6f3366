"""Strict DER decoding: the one place where asn1crypto's parse errors become `DecodeError`.

asn1crypto parses lazily and accepts BER. CMP protection and POPO signatures are computed over DER
(RFC 9810 5.1.3, RFC 4211 4.1), so a message is accepted only if it is entirely DER, with no
trailing bytes, and every part is proven to parse now, not found broken later when a handler
happens to touch it. The proof is one walk over the octets against the schema (`load_der`,
`check_der_schema`); asn1crypto then builds each field lazily, as it is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from asn1crypto import parser, x509
from asn1crypto.core import (
    VOID,
    Any,
    Asn1Value,
    BMPString,
    Boolean,
    Choice,
    GeneralizedTime,
    IA5String,
    Integer,
    Null,
    NumericString,
    ObjectIdentifier,
    OctetBitString,
    OctetString,
    ParsableOctetBitString,
    ParsableOctetString,
    Primitive,
    PrintableString,
    Sequence,
    SequenceOf,
    Set,
    SetOf,
    TeletexString,
    UniversalString,
    UTCTime,
    UTF8String,
    VisibleString,
    _build,
)

from ..errors import DecodeError
from ..memo import CERTIFICATE_BYTES

T = TypeVar("T", bound=Asn1Value)

# asn1crypto raises whatever its conversions raise on malformed input (ValueError, TypeError,
# KeyError, OverflowError, even AttributeError for some universal types inside `Any`): this is the
# parser boundary, so every exception of the parse becomes the one documented DecodeError.
_PARSE_ERRORS = (Exception,)


def load_der(spec: type[T], data: bytes) -> T:
    """Parse `data` as `spec`, requiring complete, canonical DER; raise `DecodeError` otherwise.

    One walk over the octets proves it before asn1crypto builds anything: `check_der_schema`
    checks every TLV as `check_der_framing` does (opaque values included) and every value against
    `spec` as `dump(force=True)` would re-encode it. The value returned is asn1crypto's lazy parse
    of the proven octets: each field parses when first read, and `dump()` returns `data`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        check_der_schema(spec, data)
        # Not `spec.load`, which PKIMessage overrides with this very function; and a CHOICE
        # needs its own `load` (asn1crypto's generic one would ignore a spec without a tag).
        load = Choice.load if issubclass(spec, Choice) else Asn1Value.load
        value: T = load.__func__(spec, data, strict=True)
    except DecodeError:
        raise
    except _NotDer as exc:
        raise DecodeError(f"{spec.__name__} is not DER encoded: {exc}") from None
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed {spec.__name__}: {exc}") from None
    return value


MAX_DEPTH = 64  # nesting of constructed encodings; CMP needs ~20, certificates inside included
_STRING_TAGS = frozenset({3, 4, 12, 18, 19, 20, 21, 22, 25, 26, 27, 28, 30})  # primitive in DER
_PRIMITIVE_ONLY = _STRING_TAGS | {1, 2, 5, 6, 10}  # universal types never constructed in DER
_FIXED_FORM = frozenset({1, 2, 3, 5, 6, 10, 16, 17})  # universal primitives `_primitive` checks
_Head = tuple[int, int, int, int, int, int]  # class, constructed, tag, TLV start, contents, end


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
    """Check the TLV at `pos` (within `limit`) and every TLV inside it; return where it ends."""
    if depth > MAX_DEPTH:
        raise DecodeError("encoding nested too deeply")
    cls, constructed, number, _, pos, end = _header(data, pos, limit)
    if constructed:
        if cls == 0 and number in _PRIMITIVE_ONLY:
            raise DecodeError(f"constructed encoding of universal type {number}")
        while pos < end:
            pos = _tlv(data, pos, end, depth + 1)
    elif cls == 0 and number in _FIXED_FORM:
        _primitive(number, data[pos:end])
    return end


def _header(data: bytes, pos: int, limit: int) -> _Head:
    """Class, constructed bit, tag number, start, contents start and end of the TLV at `pos`,
    whose identifier and length octets must be DER and whose end must be within `limit`."""
    if pos >= limit:
        raise DecodeError("truncated: tag expected")
    first = data[pos]
    at = pos + 1
    number = first & 0x1F
    if number == 0x1F:  # high tag number: base 128, no leading zero digit, >= 31
        number = 0
        if at < limit and data[at] == 0x80:
            raise DecodeError("non-minimal tag number")
        while True:
            if at >= limit:
                raise DecodeError("truncated tag number")
            byte = data[at]
            at += 1
            number = number << 7 | byte & 0x7F
            if not byte & 0x80:
                break
        if number < 31:
            raise DecodeError("high tag number form for a low tag number")
    if at >= limit:
        raise DecodeError("truncated: length expected")
    length = data[at]
    at += 1
    if length == 0x80:
        raise DecodeError("indefinite length")
    if length & 0x80:
        size = length & 0x7F
        if size > 4 or at + size > limit:
            raise DecodeError("length field too long or truncated")
        length = int.from_bytes(data[at : at + size], "big")
        if length < 0x80 or data[at] == 0:
            raise DecodeError("non-minimal length")
        at += size
    end = at + length
    if end > limit:
        raise DecodeError("value runs past its container")
    return first >> 6, first >> 5 & 1, number, pos, at, end


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


def oid_dotted(contents: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's contents; `ValueError` unless they are DER
    (complete, minimal subidentifiers)."""
    if not contents or contents[-1] & 0x80:
        raise ValueError("truncated OBJECT IDENTIFIER")
    if _non_minimal_arc(contents):
        raise ValueError("OBJECT IDENTIFIER not minimally encoded")
    arcs: list[int] = []
    value = 0
    for byte in contents:
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))


def _non_minimal_arc(content: bytes) -> bool:
    """Whether an OID subidentifier starts with a 0x80 (a leading zero digit)."""
    at = content.find(0x80)
    while at != -1:
        if at == 0 or not content[at - 1] & 0x80:  # a subidentifier starts here
            return True
        at = content.find(0x80, at + 1)
    return False


# --------------------------------------------------------------------------------------------
# The schema walk: what asn1crypto's `dump(force=True)` would change, found in the octets.
#
# `load_der` used to parse everything with asn1crypto, re-encode it with `dump(force=True)` and
# compare. Correct, but it built every value twice: ~0.5 ms per certificate a message carries,
# most of the cost of decoding a message. The walk below applies asn1crypto's own parsing rules
# (`Sequence._parse_children`, `_build`, `Choice.validate`, the `_oid_pair` / `_spec_callbacks`
# spec selection) to the received octets, reading the declarative spec classes, and checks for
# each value what its forced re-encoding would have changed:
#
# - SEQUENCE: an element after the last field, a required field missing, a DEFAULT value
#   present (DER leaves it out), an element that matches no field;
# - SET OF: elements not in ascending order of their encodings (asn1crypto sorts them);
# - CHOICE: no alternative with the element's tag; EXPLICIT tags holding not exactly one value;
# - tags: the class, form and number each value's spec and field parameters give (a primitive
#   OCTET STRING where an INTEGER belongs, a constructed form of a primitive type);
# - INTEGER (also IMPLICIT tagged, which the framing check cannot see): minimal octets; BOOLEAN
#   00 or FF; NULL empty; a BIT STRING holding octets (keys, signatures): no unused bits;
#   strings: octets that decode and encode back unchanged (e.g. UTF8String is UTF-8);
# - an OCTET STRING or BIT STRING the schema parses (extension values, keys): exactly one DER
#   value of its type inside, framing included;
# - every other primitive (times, OIDs, named BIT STRINGs, INTEGERs with names, IDNA names):
#   asn1crypto's own round trip through `.native` and `.set()`, exactly what `dump(force=True)`
#   did, memoised by class and octets; canonical UTCTime and GeneralizedTime (Z, seconds, a
#   fraction without trailing zeros) are recognised without it.
#
# A verdict depends only on the plan, the depth and the octets: a SEQUENCE, SEQUENCE OF or SET OF
# proven DER is remembered by (depth, its octets) per plan, and the same octets are not walked
# again. That is done for certificates up to 16 KB (a client sends the same ones with every
# message) and for values of at most 64 octets (algorithm identifiers, names, generalInfo entries
# repeat across messages); each memo is bounded (`_MEMO_SIZE`), and a refusal is never remembered.
#
# Classes that override how asn1crypto parses or encodes them (and `Any`, `Set`) are not modelled:
# asn1crypto builds and re-encodes each such value as before. So what is refused is what the
# whole-message re-encoding refused, and every value converts to `.native` as it did then;
# `tests/test_asn1_der_strict.py` compares the two on damaged messages.
# --------------------------------------------------------------------------------------------


class _NotDer(ValueError):
    """A value whose forced re-encoding would differ from the octets received."""


_Spec = type[Asn1Value]  # asn1crypto is untyped: to mypy its classes are `Any`
_NO_PARAMS: dict[str, object] = {}

# What the walk does with a value: accepts it (`RawValue`, whose framing is checked), has
# asn1crypto build and re-encode it, or checks it itself (the rest; the last two parse octets).
(
    _RAW,
    _DELEGATE,
    _PRIMITIVE,
    _SEQUENCE,
    _SEQUENCE_OF,
    _SET_OF,
    _CHOICE,
    _INTEGER,
    _BOOLEAN,
    _NULL,
    _OCTETS,
    _OCTET_BITS,
    _STRING,
    _PARSABLE,
    _PARSABLE_BITS,
) = range(15)
_CONSTRUCTED = frozenset({_SEQUENCE, _SEQUENCE_OF, _SET_OF})

# The attributes that define how a modelled base class parses, converts and re-encodes: a
# subclass overriding any of them is not modelled, since the walk cannot know what it does.
_BEHAVIOUR = (
    "__init__",
    "_setup",
    "_parse_children",
    "_set_contents",
    "_lazy_child",
    "_determine_spec",
    "validate",
    "parse",
    "chosen",
    "parsed",
    "native",
    "set",
    "dump",
    "contents",
    "__int__",
    "__bool__",
    "__bytes__",
    "__unicode__",
    "_merge_chunks",
    "_as_chunk",
)

# Overrides known to change nothing the walk proves: `Name.native` regroups the native value of
# its one alternative (an RDNSequence, which the walk checks) into a dict; it cannot fail where
# that conversion succeeded.
_HARMLESS: dict[type, frozenset[str]] = {x509.Name: frozenset({"native"})}

_MODELLED: tuple[tuple[_Spec, int], ...] = (  # the most specific base first
    (ParsableOctetBitString, _PARSABLE_BITS),
    (ParsableOctetString, _PARSABLE),
    (OctetBitString, _OCTET_BITS),
    (OctetString, _OCTETS),
    (Integer, _INTEGER),
    (Boolean, _BOOLEAN),
    (Null, _NULL),
    (UTF8String, _STRING),
    (PrintableString, _STRING),
    (IA5String, _STRING),
    (TeletexString, _STRING),
    (BMPString, _STRING),
    (UniversalString, _STRING),
    (VisibleString, _STRING),
    (NumericString, _STRING),
    (SetOf, _SET_OF),
    (SequenceOf, _SEQUENCE_OF),
    (Sequence, _SEQUENCE),
    (Choice, _CHOICE),
)


def _kind_of(spec: _Spec) -> int:
    """How the walk checks a value of class `spec` (see `_MODELLED` and `_BEHAVIOUR`)."""
    if issubclass(spec, RawValue):
        return _RAW
    if issubclass(spec, Set | Any) or spec.explicit is not None:
        return _DELEGATE
    for base, kind in _MODELLED:
        if not issubclass(spec, base):
            continue
        harmless = _HARMLESS.get(spec, frozenset())
        if any(
            getattr(spec, name) is not getattr(base, name)
            for name in _BEHAVIOUR
            if hasattr(base, name) and name not in harmless
        ):
            break
        if (
            (kind == _INTEGER and spec._map is not None)  # the round trip goes through names
            or (kind == _SEQUENCE and not spec._fields)
            or (kind in (_SEQUENCE_OF, _SET_OF) and spec._child_spec is None)
            or (kind == _CHOICE and (spec.class_ is not None or spec.tag is not None))
        ):
            break
        return kind
    # Any other primitive re-encodes as `Primitive.dump(force=True)` does: `.set(.native)`
    primitive = issubclass(spec, Primitive) and spec.dump is Primitive.dump
    return _PRIMITIVE if primitive and spec.__init__ is Primitive.__init__ else _DELEGATE


class _Field:
    """One field of a Sequence class, as `Sequence._parse_children` reads it."""

    __slots__ = (
        "accepts",
        "default",
        "default_der",
        "ident",
        "name",
        "optional",
        "plan",
        "static",
    )

    def __init__(self, spec: _Spec, index: int) -> None:
        name, field_spec, params = spec._fields[index]
        self.name: str = name
        self.ident: tuple[int | None, int | None] = spec._field_ids[index]
        self.optional = bool(params) and ("optional" in params or "default" in params)
        self.default = "default" in params
        self.default_der: bytes | None = None  # its DER, computed when first needed
        # (field spec, value spec, params, spec override); None: chosen by an OID or a callback
        self.static: tuple[_Spec, _Spec, dict[str, object], None] | None = None
        if spec._precomputed_specs[index] is not None:
            self.static = (field_spec, field_spec, params, None)
        self.plan: _Plan | None = None  # the static spec's plan, made when first needed
        # an untagged CHOICE's verdicts by element (class, tag): see `_choice_accepts`
        self.accepts: dict[tuple[int, int], bool] = {}


class _Plan:
    """How the walk checks a value of one spec class with one dict of field parameters."""

    __slots__ = (
        "alternatives",
        "certificate",
        "child",
        "encoding",
        "explicit",
        "fast",
        "fields",
        "ident",
        "inner",
        "kind",
        "memo",
        "params",
        "proven",
        "spec",
    )

    def __init__(self, spec: _Spec, params: dict[str, object]) -> None:
        self.spec = spec
        self.params = params
        self.kind = _kind_of(spec)
        self.explicit: tuple[tuple[int, int], ...] | None = None
        self.inner: _Plan = self  # the plan of the value inside the explicit tags
        self.ident: tuple[int, int, int] | None = None  # class, constructed, tag number
        self.fields: tuple[_Field, ...] = ()
        self.child: _Plan | None = None  # SEQUENCE OF / SET OF: the element's plan
        self.alternatives: dict[tuple[int, int], _Plan] = {}  # CHOICE: plans by tag, as met
        self.encoding = ""
        self.memo: dict[bytes, None] = {}  # _PRIMITIVE: contents proven canonical
        # SEQUENCE / SEQUENCE OF / SET OF values proven DER, by depth and octets: certificates
        # (a client sends the same ones with every message) and values short enough to repeat
        # (algorithm identifiers, names, the implicitConfirm generalInfo)
        self.certificate = isinstance(spec, type) and issubclass(spec, x509.Certificate)
        self.proven: dict[tuple[int, bytes], None] = {}
        self.fast: Callable[[bytes], bool] | None = _FAST_CANONICAL.get(spec)
        if self.kind == _DELEGATE:
            return
        try:
            value = spec(**params)  # also runs asn1crypto's per-class `_setup`
        except Exception:  # asn1crypto refuses these parameters: let it say so for each value
            self.kind = _DELEGATE
            return
        if value.explicit is not None:
            if "implicit" in params:
                self.kind = _DELEGATE
                return
            self.explicit = tuple(reversed(value.explicit))  # outermost first, as `_build`
            self.inner = _plan(spec, None)
            return
        self.ident = (value.class_, value.method, value.tag)
        if self.kind == _SEQUENCE:
            self.fields = tuple(_Field(spec, i) for i in range(len(spec._fields)))
            if spec._oid_nums is not None and not spec._spec_callbacks:
                _, oid_spec, oid_params = spec._fields[spec._oid_nums[0]]
                if oid_params or not issubclass(oid_spec, ObjectIdentifier):
                    self.kind = _DELEGATE  # the walk reads the OID from a plain, required field
        elif self.kind == _STRING:
            self.encoding = spec._encoding


_PLANS: dict[tuple[_Spec, int], tuple[dict[str, object], _Plan]] = {}


def _plan(spec: _Spec, params: dict[str, object] | None) -> _Plan:
    """The (memoised) plan for `spec` with `params`: a field's or an alternative's own dict."""
    params = _NO_PARAMS if params is None else params
    key = (spec, id(params))
    entry = _PLANS.get(key)
    if entry is None or entry[0] is not params:
        entry = (params, _Plan(spec, params))  # holding `params` keeps its id from being reused
        _PLANS[key] = entry
    return entry[1]


_MEMO_SIZE = 256  # canonical contents remembered per primitive plan (and OID names in all)
_MEMO_OCTETS = 64  # ... if no longer than this
_OID_NAMES: dict[tuple[_Spec, bytes], object] = {}

_UTC_TIME = re.compile(rb"[0-9]{12}Z")
_GENERALIZED_TIME = re.compile(rb"[0-9]{14}(?:\.[0-9]{0,5}[1-9])?Z")


def _is_date_time(year: int, octets: bytes) -> bool:
    """Whether MMDDhhmmss at the start of `octets` is a valid date and time in `year`."""
    month, day, hour, minute, second = (int(octets[i : i + 2]) for i in range(0, 10, 2))
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def _canonical_utc_time(octets: bytes) -> bool:
    """YYMMDDhhmmssZ of a real time: what `UTCTime.set` writes for its `.native` (a shortcut;
    anything else takes asn1crypto's round trip)."""
    if _UTC_TIME.fullmatch(octets) is None:
        return False
    year = int(octets[:2])
    return _is_date_time(year + (2000 if year < 50 else 1900), octets[2:])


def _canonical_generalized_time(octets: bytes) -> bool:
    """YYYYMMDDhhmmss[.f]Z (1 to 6 fraction digits, the last not 0) of a real time from year
    1000 on (`strftime("%Y")` pads no further): what `GeneralizedTime.set` writes for its
    `.native` (a shortcut; anything else takes asn1crypto's round trip)."""
    if _GENERALIZED_TIME.fullmatch(octets) is None:
        return False
    year = int(octets[:4])
    return year >= 1000 and _is_date_time(year, octets[4:])


_FAST_CANONICAL: dict[type, Callable[[bytes], bool]] = {
    UTCTime: _canonical_utc_time,
    GeneralizedTime: _canonical_generalized_time,
}


def check_der_schema(spec: _Spec, data: bytes) -> None:
    """Raise unless `data` is one value of `spec` in DER, with nothing after it.

    One walk checks the framing (as `check_der_framing`) and the schema: `DecodeError` for
    framing that is not DER, `_NotDer` (a ValueError) for BER that is not DER or a value that
    does not fit the schema, and whatever asn1crypto raises for a value it cannot convert;
    `load_der` turns each into `DecodeError`.
    """
    head = _header(data, 0, len(data))
    _check(data, head, _plan(spec, None), None, 0)
    if head[5] != len(data):
        raise DecodeError(f"{len(data) - head[5]} bytes of trailing data")


def _check(data: bytes, head: _Head, plan: _Plan, nested: _Spec | None, depth: int) -> None:
    """Check the TLV `head` (its header already checked by `_header`) as a value of `plan`.

    `nested` is the spec asn1crypto parses the contents of an OCTET STRING or BIT STRING as
    (`_build`'s `nested_spec`), if any. Values the walk does not look into (`RawValue`, and those
    asn1crypto checks) have their framing checked by `_tlv`, the rest here, TLV by TLV.
    """
    if depth > MAX_DEPTH:
        raise DecodeError("encoding nested too deeply")
    kind = plan.kind
    cls, constructed, tag, pos, start, end = head
    if kind == _DELEGATE or (nested is not None and kind < _PARSABLE):
        _tlv(data, pos, end, depth)
        _delegate(data, head, plan, nested)
        return
    if cls == 0:  # what `_tlv` checks of a universal TLV, whatever the schema says of it
        if constructed:
            if tag in _PRIMITIVE_ONLY:
                raise DecodeError(f"constructed encoding of universal type {tag}")
        elif tag in _FIXED_FORM:
            _primitive(tag, data[start:end])
    if plan.explicit is not None:
        for expected in plan.explicit:
            if (cls, tag) != expected or not constructed:
                raise _NotDer(f"{plan.spec.__name__}: expected tag {expected}, found {(cls, tag)}")
            if start == end:
                raise _NotDer(f"{plan.spec.__name__}: nothing inside its explicit tag")
            head = _header(data, start, end)
            if head[5] != end:
                raise _NotDer(f"{plan.spec.__name__}: more than one value in its explicit tag")
            cls, constructed, tag, pos, start, end = head
            depth += 1
        _check(data, head, plan.inner, nested, depth)
        return
    if kind == _RAW:
        _tlv(data, pos, end, depth)
        return
    if kind == _CHOICE:
        alternative = plan.alternatives.get((cls, tag)) or _alternative(plan, cls, tag)
        _check(data, head, alternative, None, depth)
        return
    if (cls, constructed, tag) != plan.ident:
        found = (cls, constructed, tag)
        raise _NotDer(f"{plan.spec.__name__}: expected {plan.ident}, found {found}")
    if kind in _CONSTRUCTED:
        size = end - pos
        remember = size <= _MEMO_OCTETS or (plan.certificate and size <= CERTIFICATE_BYTES)
        if remember:
            key = (depth, data[pos:end])  # the same octets at the same depth: the same verdict
            if key in plan.proven:
                return
        if kind == _SEQUENCE:
            _check_fields(data, start, end, plan, depth + 1)
        else:
            _check_elements(data, start, end, plan, depth + 1)
        if remember:
            if len(plan.proven) >= _MEMO_SIZE:
                plan.proven.clear()
            plan.proven[key] = None
    elif kind == _PRIMITIVE:
        _check_round_trip(data[start:end], plan)
    elif kind == _OCTETS:
        pass
    elif kind == _INTEGER:
        if start == end or (
            end - start > 1
            and (
                (data[start] == 0x00 and data[start + 1] < 0x80)
                or (data[start] == 0xFF and data[start + 1] >= 0x80)
            )
        ):
            raise _NotDer(f"{plan.spec.__name__}: INTEGER not minimally encoded")
    elif kind == _BOOLEAN:
        if end - start != 1 or data[start] not in (0x00, 0xFF):
            raise _NotDer(f"{plan.spec.__name__}: BOOLEAN not 00 or FF")
    elif kind == _NULL:
        if start != end:
            raise _NotDer(f"{plan.spec.__name__}: NULL with contents")
    elif kind == _STRING:
        octets = data[start:end]
        if octets.decode(plan.encoding).encode(plan.encoding) != octets:
            raise _NotDer(f"{plan.spec.__name__}: not a canonical {plan.encoding} string")
    else:  # _OCTET_BITS, _PARSABLE, _PARSABLE_BITS
        if kind != _PARSABLE:
            if start == end or data[start] != 0:
                raise _NotDer(f"{plan.spec.__name__}: octets in a BIT STRING with unused bits")
            start += 1
        if nested is not None:  # one value inside the octets
            inside = _header(data, start, end)
            if inside[5] != end:
                raise _NotDer(f"{plan.spec.__name__}: data after the value it contains")
            _check(data, inside, _plan(nested, None), None, depth + 1)


def _check_elements(data: bytes, start: int, end: int, plan: _Plan, depth: int) -> None:
    """Check each element of a SEQUENCE OF / SET OF's contents, and a SET OF's DER order."""
    child = plan.child
    if child is None:
        child = plan.child = _plan(plan.spec._child_spec, None)
    ordered = plan.kind == _SET_OF  # asn1crypto sorts the encodings
    previous = b""
    while start < end:
        element = _header(data, start, end)
        _check(data, element, child, None, depth)
        if ordered:
            encoded = data[start : element[5]]
            if encoded < previous:
                raise _NotDer(f"{plan.spec.__name__}: SET OF elements not in DER order")
            previous = encoded
        start = element[5]


def _alternative(plan: _Plan, cls: int, tag: int) -> _Plan:
    """The plan of the CHOICE alternative with tag (cls, tag), as `Choice.validate` finds it."""
    index = plan.spec._id_map.get((cls, tag))
    if index is None:
        raise _NotDer(f"{plan.spec.__name__} has no alternative with tag {(cls, tag)}")
    _, spec, params = plan.spec._alternatives[index]
    alternative = plan.alternatives[(cls, tag)] = _plan(spec, params)
    return alternative


def _check_round_trip(octets: bytes, plan: _Plan) -> None:
    """`Primitive.dump(force=True)` on these contents: `.set(.native)` must give them back."""
    if octets in plan.memo or (plan.fast is not None and plan.fast(octets)):
        return
    value = plan.spec(contents=octets, **plan.params)
    native = value.native
    value.contents = None
    value.set(native)
    if value.contents != octets:
        raise _NotDer(f"{plan.spec.__name__}: {native!r} is encoded otherwise in DER")
    if len(octets) <= _MEMO_OCTETS:
        if len(plan.memo) >= _MEMO_SIZE:
            plan.memo.clear()
        plan.memo[octets] = None


_Found = list[tuple[_Head, _Spec, dict[str, object], _Spec | None] | None]


def _check_fields(data: bytes, start: int, end: int, plan: _Plan, depth: int) -> None:
    """Match the elements of a SEQUENCE's contents to its fields as `_parse_children` does,
    and check each against its field's spec."""
    spec = plan.spec
    fields = plan.fields
    found: _Found = []
    index = 0
    contents = start
    while start < end:
        head = _header(data, start, end)
        element_id = (head[0], head[2])
        first = index  # the field after the last one matched
        for index in range(first, len(fields)):
            field = fields[index]
            static = field.static
            field_spec, value_spec, params, override = static or _dynamic_spec(
                data, spec, index, found, data[contents:start]
            )
            if (
                not field.optional
                or field.ident == element_id
                or field_spec is Any
                or _field_accepts(field, field_spec, params, head, data)
            ):
                break
            found.append(None)  # absent: the element is for a later field
        else:
            raise _NotDer(f"{spec.__name__}: an element after the last field")
        if static is not None:
            child = field.plan
            if child is None:
                child = field.plan = _plan(field_spec, params)
            nested = None
        else:
            if field_spec is None or (override is not None and issubclass(field_spec, Any)):
                field_spec, override = value_spec, None
            child = _plan(field_spec, params)
            nested = value_spec if override is not None else None
        _check(data, head, child, nested, depth)
        if field.default and data[start : head[5]] == _default_der(spec, index, field):
            raise _NotDer(
                f"{spec.__name__}: {field.name} has its DEFAULT value, so is absent in DER"
            )
        found.append((head, field_spec, params, nested))
        index += 1
        start = head[5]
    for field in fields[index:]:
        if not field.optional:
            raise _NotDer(f"{spec.__name__}: field {field.name} missing")


_DynamicSpec = tuple[_Spec, _Spec, dict[str, object], _Spec | None]
_CALLBACK_SPECS: dict[tuple[_Spec, int, bytes], _DynamicSpec] = {}


def _dynamic_spec(
    data: bytes, spec: _Spec, index: int, found: _Found, before: bytes
) -> _DynamicSpec:
    """`_determine_spec` of a field typed by a preceding OID (`_oid_pair`) or a callback:
    (field spec, value spec, params, spec override). `before`: the elements before it."""
    name, field_spec, params = spec._fields[index]
    if spec._spec_callbacks is not None and name in spec._spec_callbacks:
        # A callback reads preceding fields (an algorithm's OID, say), which `before` holds:
        # its answer for the same octets is the same, so it is memoised by them.
        key = (spec, index, before)
        choice = _CALLBACK_SPECS.get(key)
        if choice is None:
            # Hand the callback a Sequence holding exactly the fields before this one.
            partial = spec()
            partial.children = [_child_tuple(data, spec, i, e) for i, e in enumerate(found)]
            _, field_spec, value_spec, params, override = partial._determine_spec(index)
            choice = (field_spec, value_spec, params, override)
            if len(before) <= _MEMO_OCTETS * 4:
                if len(_CALLBACK_SPECS) >= _MEMO_SIZE:
                    _CALLBACK_SPECS.clear()
                _CALLBACK_SPECS[key] = choice
        return choice
    oid_entry = found[spec._oid_nums[0]]  # present: `_Plan` delegates classes where it may not be
    if oid_entry is None:
        raise _NotDer(f"{spec.__name__}: no OID for field {name}")
    (_, _, _, _, contents, end), oid_spec = oid_entry[0], oid_entry[1]
    oid_key = (oid_spec, data[contents:end])
    oid = _OID_NAMES.get(oid_key)
    if oid is None:
        oid = oid_spec(contents=oid_key[1]).native
        if len(oid_key[1]) <= _MEMO_OCTETS:
            if len(_OID_NAMES) >= _MEMO_SIZE:
                _OID_NAMES.clear()
            _OID_NAMES[oid_key] = oid
    if oid in spec._oid_specs:
        override = spec._oid_specs[oid]
        return field_spec, override, params, override
    return field_spec, field_spec, params, None


def _child_tuple(
    data: bytes,
    spec: _Spec,
    index: int,
    entry: tuple[_Head, _Spec, dict[str, object], _Spec | None] | None,
) -> object:
    """A child as `Sequence._parse_children` stores it: parts and specs, VOID or the default."""
    if entry is None:
        _, field_spec, params = spec._fields[index]
        return field_spec(**params) if "default" in params else VOID
    (cls, constructed, tag, pos, contents, end), child_spec, params, nested = entry
    parts = (cls, constructed, tag, data[pos:contents], data[contents:end], b"")
    return (*parts, child_spec, params) if nested is None else (*parts, child_spec, params, nested)


def _field_accepts(
    field: _Field, spec: _Spec, params: dict[str, object], head: _Head, data: bytes
) -> bool:
    """`_choice_accepts`, answered from the field where its spec is static: never for a field
    that is no CHOICE or is explicitly tagged (an element with its tag matched `ident` before),
    else remembered per element class and tag."""
    if field.static is None or getattr(spec, "explicit", None):
        return _choice_accepts(spec, params, head, data)
    if "explicit" in params or not issubclass(spec, Choice):
        return False
    key = (head[0], head[2])
    verdict = field.accepts.get(key)
    if verdict is None:
        verdict = field.accepts[key] = _choice_accepts(spec, params, head, data)
    return verdict


def _choice_accepts(spec: _Spec, params: dict[str, object], head: _Head, data: bytes) -> bool:
    """Whether an optional untagged CHOICE field takes this element (`_parse_children` asks)."""
    if not issubclass(spec, Choice):
        return False
    try:
        spec(**params).validate(head[0], head[2], data[head[4] : head[5]])
    except ValueError:
        return False
    return True


def _default_der(spec: _Spec, index: int, field: _Field) -> bytes:
    """The DER of a field's DEFAULT value, which `Sequence._set_contents` leaves out."""
    if field.default_der is None:
        _, field_spec, params = spec._fields[index]
        field.default_der = bytes(field_spec(**params).dump())
    return field.default_der


def _delegate(data: bytes, head: _Head, plan: _Plan, nested: _Spec | None) -> None:
    """What the walk does not model: asn1crypto builds this value and re-encodes it."""
    pos, end = head[3], head[5]
    parts, _ = parser._parse(data, end, pointer=pos)
    value = _build(*parts, spec=plan.spec, spec_params=plan.params, nested_spec=nested)
    if value.dump(force=True) != data[pos:end]:
        raise _NotDer(f"{plan.spec.__name__} is not DER encoded")


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
