"""`ca.template`: the CA's DER reading of a CertTemplate agrees with asn1crypto's reading.

The DER walk is what the CA uses for every enrolment; asn1crypto's `.native` (the reading it
replaced, kept as the fallback) is the oracle. Random templates (`strategies.cert_templates`) and
random name attributes of every string type must read the same both ways, or the walk must
decline (`ValueError`) and leave the template to asn1crypto; refusals carry the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from asn1crypto.core import ObjectIdentifier
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import cert_templates, public_key_infos

from sanscmp.ca.authority import CertificateRequest
from sanscmp.ca.template import NO_PUBLIC_KEY, _read_der, _read_parsed, template_request
from sanscmp.engine.asn1 import CertTemplate
from sanscmp.engine.encode import explicit, sequence, tlv

SPKI = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
)
PUBLIC_KEY = b"\xa6" + SPKI[1:]  # [6] IMPLICIT SubjectPublicKeyInfo
UNKNOWN_OID = "1.3.6.1.4.1.99999.7.300000"
STRING_TAGS = (0x0C, 0x12, 0x13, 0x14, 0x16, 0x1A, 0x1C, 0x1E)  # the eight the walk decodes
ATTRIBUTE_OIDS = (*asn1_x509.NameType._map, UNKNOWN_OID)  # every type asn1crypto names, and one


def outcome(read: Any, *args: object) -> tuple[str, object]:
    """What a reading gives: ("ok", its request) or the exception's type and message."""
    try:
        return "ok", read(*args)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def attributes(name: x509.Name) -> list[list[tuple[str, str | bytes]]]:
    """A name's attributes in order (Name equality compares each RDN as a set)."""
    return [[(a.oid.dotted_string, a.value) for a in rdn] for rdn in name.rdns]


def read_both(der: bytes) -> tuple[str, object]:
    """Check the readings of `der` agree; return asn1crypto's outcome.

    `template_request` (walk, else asn1crypto) must give exactly asn1crypto's outcome; the walk
    by itself must give the same request or decline with `ValueError`/`IndexError`.
    """
    reference = outcome(_read_parsed, CertTemplate.load(der))
    assert outcome(template_request, CertTemplate.load(der)) == reference
    try:
        fast = _read_der(der)
    except (ValueError, IndexError):
        return reference
    assert reference == ("ok", fast)
    assert isinstance(reference[1], CertificateRequest)
    assert attributes(fast.subject) == attributes(reference[1].subject)
    return reference


def template(*fields: bytes) -> bytes:
    return sequence(*fields)


def subject(*rdns: list[bytes]) -> bytes:
    """`[5] EXPLICIT Name` of RDNs given as lists of encoded AttributeTypeAndValue."""
    return explicit(5, sequence(*(tlv(0x31, b"".join(rdn)) for rdn in rdns)))


def attribute(oid: str, tag: int, contents: bytes) -> bytes:
    return sequence(asn1_oid(oid), tlv(tag, contents))


def asn1_oid(dotted: str) -> bytes:
    return bytes(ObjectIdentifier(dotted).dump())


def validity(not_before: bytes | None, not_after: bytes | None) -> bytes:
    parts = [explicit(n, t) for n, t in ((0, not_before), (1, not_after)) if t is not None]
    return tlv(0xA4, b"".join(parts))


def extensions(*items: tuple[str, bytes]) -> bytes:
    """`[9] IMPLICIT Extensions` of (OID, DER value) pairs, none critical."""
    return tlv(0xA9, b"".join(sequence(asn1_oid(oid), tlv(0x04, value)) for oid, value in items))


# ---- properties ----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(cert_templates())
def test_random_templates_read_the_same(value: CertTemplate) -> None:
    read_both(value.dump())


@settings(max_examples=200, deadline=None)
@given(cert_templates(), public_key_infos())
def test_random_templates_with_a_key_are_read_by_the_walk(value: CertTemplate, key: Any) -> None:
    """What clients send (a key, the strategies' names, times and extensions) needs no fallback."""
    value["publicKey"] = key
    der = value.dump()
    reference = read_both(der)
    if reference[0] == "ok":
        assert _read_der(der) == reference[1]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(ATTRIBUTE_OIDS),
            st.sampled_from(STRING_TAGS),
            st.one_of(
                st.binary(max_size=8),
                st.text(max_size=8).map(lambda s: s.encode("utf-8")),
                st.text(max_size=4).map(lambda s: s.encode("utf-16-be")),
                st.sampled_from([b"DE", b"a@b.example", b"xn--bcher-kva.example", b"\xa4\x80"]),
            ),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_random_attributes_read_the_same(values: list[tuple[str, int, bytes]]) -> None:
    rdns = [[attribute(oid, tag, contents)] for oid, tag, contents in values]
    read_both(template(subject(*rdns), PUBLIC_KEY))


def test_every_named_type_with_every_universal_tag() -> None:
    """The walk's decoding tables against asn1crypto's, cell by cell."""
    samples = (b"ab", b"\xc3\xa9t\xc3\xa9", b"\x00\x00\x00a", b"x@y.example", b"\xa4")
    for oid in ATTRIBUTE_OIDS:
        for tag in range(1, 31):
            for contents in samples:
                read_both(template(subject([attribute(oid, tag, contents)]), PUBLIC_KEY))


# ---- examples ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oid", "tag", "contents", "value"),
    [
        ("2.5.4.3", 0x0C, "Grüße".encode(), "Grüße"),  # UTF8String
        ("2.5.4.3", 0x13, b"Printable", "Printable"),
        ("2.5.4.3", 0x16, b"ia5", "ia5"),  # IA5String: tolerated in a DirectoryString
        ("2.5.4.3", 0x14, b"\xa4", "¤"),  # a DirectoryString's TeletexString: cp1252
        (UNKNOWN_OID, 0x14, b"\xa4", "$"),  # any other TeletexString: T.61
        ("2.5.4.3", 0x1E, "Ωmega".encode("utf-16-be"), "Ωmega"),  # BMPString
        ("2.5.4.3", 0x1C, "𝄞".encode("utf-32-be"), "𝄞"),  # UniversalString
        (UNKNOWN_OID, 0x1A, b"visible", "visible"),  # VisibleString
        (UNKNOWN_OID, 0x12, b"0123 45", "0123 45"),  # NumericString
        ("2.5.4.6", 0x13, b"DE", "DE"),
        ("1.2.840.113549.1.9.1", 0x16, b"me@xn--bcher-kva.example", "me@bücher.example"),
        ("0.9.2342.19200300.100.1.25", 0x16, b"xn--bcher-kva", "bücher"),  # DC: IDNA
    ],
)
def test_string_types(oid: str, tag: int, contents: bytes, value: str) -> None:
    der = template(subject([attribute(oid, tag, contents)]), PUBLIC_KEY)
    read_both(der)
    request = _read_der(der)
    assert attributes(request.subject) == [[(oid, value)]]


def test_multi_valued_rdn_keeps_its_order() -> None:
    rdn = [attribute("2.5.4.3", 0x0C, b"b"), attribute("2.5.4.10", 0x0C, b"a")]
    der = template(subject(rdn, [attribute("2.5.4.6", 0x13, b"DE")]), PUBLIC_KEY)
    read_both(der)
    assert attributes(_read_der(der).subject) == [
        [("2.5.4.3", "b"), ("2.5.4.10", "a")],
        [("2.5.4.6", "DE")],
    ]


def test_public_key_is_the_spki() -> None:
    der = template(PUBLIC_KEY)
    read_both(der)
    request = _read_der(der)
    assert request.public_key_der == SPKI
    assert request.subject == x509.Name([])


@pytest.mark.parametrize(
    "fields",
    [
        (),
        (subject([attribute("2.5.4.3", 0x0C, b"no key")]),),
        (tlv(0x81, b"\x05"),),  # serialNumber only, as an rr's certDetails
    ],
)
def test_missing_public_key(fields: tuple[bytes, ...]) -> None:
    der = template(*fields)
    assert read_both(der) == ("ValueError", NO_PUBLIC_KEY)
    with pytest.raises(ValueError, match="no public key"):
        _read_der(der)


def test_empty_public_key_is_refused_as_before() -> None:
    """An empty `[6]` is not "no public key": asn1crypto's refusal, as before the walk."""
    kind, text = read_both(template(b"\xa6\x00"))
    assert kind == "ValueError" and "algorithm" in str(text)


def test_empty_subject_validity_and_extensions() -> None:
    der = template(tlv(0xA4, b""), explicit(5, sequence()), PUBLIC_KEY, tlv(0xA9, b""))
    read_both(der)
    request = _read_der(der)
    assert (request.subject, request.subject_alt_names, request.ca) == (x509.Name([]), None, False)
    assert (request.not_before, request.not_after) == (None, None)


@pytest.mark.parametrize(
    ("not_before", "not_after", "expected"),
    [
        (
            b"\x17\x0d491231235959Z",
            b"\x17\x0d500101000000Z",
            (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1950, 1, 1, tzinfo=UTC)),
        ),
        (
            b"\x18\x0f20261129103000Z",
            b"\x18\x1121000101000000.5Z",
            (
                datetime(2026, 11, 29, 10, 30, tzinfo=UTC),
                datetime(2100, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
            ),
        ),
        (
            None,
            b"\x18\x1620261129103000.000001Z",
            (None, datetime(2026, 11, 29, 10, 30, 0, 1, tzinfo=UTC)),
        ),
        (b"\x17\x0d260101000000Z", None, (datetime(2026, 1, 1, tzinfo=UTC), None)),
    ],
)
def test_validity(
    not_before: bytes | None, not_after: bytes | None, expected: tuple[datetime | None, ...]
) -> None:
    der = template(validity(not_before, not_after), PUBLIC_KEY)
    read_both(der)
    request = _read_der(der)
    assert (request.not_before, request.not_after) == expected
    for value in (request.not_before, request.not_after):
        assert value is None or value.tzinfo is UTC


def test_subject_alt_name_is_copied_as_der() -> None:
    names = x509.SubjectAlternativeName([x509.DNSName("a.example"), x509.DNSName("b.example")])
    der = template(PUBLIC_KEY, extensions(("2.5.29.17", names.public_bytes())))
    read_both(der)
    assert _read_der(der).subject_alt_names == names.public_bytes()


def test_other_extensions_are_ignored() -> None:
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    der = template(
        PUBLIC_KEY, extensions(("2.5.29.15", usage.public_bytes()), (UNKNOWN_OID, b"\x05\x00"))
    )
    read_both(der)
    assert (_read_der(der).subject_alt_names, _read_der(der).ca) == (None, False)


@pytest.mark.parametrize(
    ("constraints", "ca"),
    [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.BasicConstraints(ca=True, path_length=2), True),
        (x509.BasicConstraints(ca=False, path_length=None), False),
    ],
)
def test_basic_constraints_ca(constraints: x509.BasicConstraints, ca: bool) -> None:
    der = template(PUBLIC_KEY, extensions(("2.5.29.19", constraints.public_bytes())))
    read_both(der)
    assert _read_der(der).ca is ca


@pytest.mark.parametrize(
    "der",
    [
        # a GraphicString value: not decoded by the walk
        template(subject([attribute(UNKNOWN_OID, 0x19, b"graphic")]), PUBLIC_KEY),
        # a UTCTime without seconds, a GeneralizedTime with 7 fraction digits: not DER
        template(validity(b"\x17\x0b2601011200Z", None), PUBLIC_KEY),
        template(validity(b"\x18\x1720260101120000.1234567Z", None), PUBLIC_KEY),
        # trailing octets after the GeneralNames of a subjectAltName
        template(
            PUBLIC_KEY,
            extensions(("2.5.29.17", bytes.fromhex("300b8209612e6578616d706c65") + b"\x05\x00")),
        ),
        # a non-minimal OID for the subjectAltName's extnID (an octet 0x80 starts an arc)
        template(
            PUBLIC_KEY, tlv(0xA9, sequence(bytes.fromhex("060480551d11"), tlv(0x04, b"\x30\x00")))
        ),
    ],
)
def test_what_the_walk_declines_asn1crypto_reads(der: bytes) -> None:
    with pytest.raises(ValueError):
        _read_der(der)
    read_both(der)


def test_template_not_in_der_falls_back() -> None:
    """An indefinite length (BER) is left to asn1crypto, through `template_request`."""
    name = sequence(tlv(0x31, attribute("2.5.4.3", 0x0C, b"ber")))
    der = template(explicit(5, name), PUBLIC_KEY)
    ber = template(b"\xa5\x80" + name + b"\x00\x00", PUBLIC_KEY)
    parsed = CertTemplate.load(ber, strict=False)
    with pytest.raises(ValueError, match="indefinite"):
        _read_der(parsed.dump())
    assert template_request(parsed) == _read_der(der)


def test_length_ending_in_0x80_is_read_as_received() -> None:
    """asn1crypto's `dump()` takes a length octet 0x80 for an indefinite length and re-encodes
    the whole template: the reading must not. Here re-encoding would fail on a UniversalString
    of one octet, where asn1crypto's reading refuses the tag of a TPM attribute first."""
    bad = [attribute("2.5.4.3", 0x1C, b"\x00"), attribute("2.23.133.2.1", 0x12, b"1")]
    der = length_ending_in_0x80(lambda n: template(subject(bad, [organization(n)]), PUBLIC_KEY))
    kind, text = read_both(der)
    assert kind == "ValueError" and "tag should have been 12" in str(text)
    der = length_ending_in_0x80(lambda n: template(subject([organization(n)]), PUBLIC_KEY))
    assert read_both(der)[0] == "ok"


def organization(size: int) -> bytes:
    return attribute("2.5.4.10", 0x0C, b"x" * size)


def length_ending_in_0x80(make: Callable[[int], bytes]) -> bytes:
    """The template `make(n)` gives for the filler size n that makes its length octets end in
    0x80 (a length of 128 or 384)."""
    for size in range(300):
        der = make(size)
        if der[1] & 0x80 and der[1 + (der[1] & 0x7F)] == 0x80:
            return der
    raise AssertionError("no filler size gives such a length")
