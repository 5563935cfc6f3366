"""The strict decoder's schema walk (`engine/asn1/der.py`) against the re-encoding it replaced.

`PKIMessage.load` used to prove DER by re-encoding the whole parsed message with asn1crypto's
`dump(force=True)` and comparing. It now checks the received octets against the schema instead
(`check_der_schema`), which must refuse exactly what the re-encoding refused. Two kinds of test:

- differential: `reference_accepts` is the old decoder, kept here as the oracle; damaged messages
  (random octet damage from `test_asn1_properties.mutate`, and structural damage that keeps the
  framing DER: a changed tag, other contents, an element dropped, repeated, moved or inserted)
  must be accepted by both or by neither;
- one test per canonical-DER rule the walk checks by hand, each with a non-canonical encoding of
  that kind that must raise `DecodeError` (and a canonical one that must not).

`ASN1_PROPERTY_SCALE=N` multiplies the example budgets, as in `test_asn1_properties`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from asn1crypto import keys, x509
from asn1crypto.core import Asn1Value, BMPString, GeneralizedTime, IA5String, ObjectIdentifier
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from strategies import CERT_DERS, pki_messages
from test_asn1_properties import Tlv, der_length, mutate, parse_tlv

from sanscmp.engine.asn1 import (
    CertStatus,
    CertTemplate,
    DecodeError,
    PKIArchiveOptions,
    PKIBody,
    PKIFailureInfo,
    PKIFreeText,
    PKIMessage,
    PKIStatusInfo,
    POPOSigningKey,
    ProofOfPossession,
    check_der_framing,
    load_der,
    oid_dotted,
)
from sanscmp.engine.encode import contents_of, explicit, sequence, split

_SCALE = float(os.environ.get("ASN1_PROPERTY_SCALE", "1"))
_PHASES = [p for p in Phase if p != Phase.explain]
FIXTURES = sorted((Path(__file__).parent / "fixtures").rglob("*.der"))


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max(1, round(max_examples * _SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        phases=_PHASES,
    )


def reference_accepts(data: bytes) -> bool:
    """The decoder before the schema walk: framing, then asn1crypto's forced re-encoding."""
    try:
        check_der_framing(data)
        value = Asn1Value.load.__func__(PKIMessage, data, strict=True)
        return bool(value.dump(force=True) == data)
    except Exception:
        return False


def accepts(data: bytes) -> bool:
    try:
        PKIMessage.load(data)
    except DecodeError:
        return False
    return True


def assert_same_verdict(data: bytes) -> None:
    new, old = accepts(data), reference_accepts(data)
    if new != old:
        verdict = "accepts" if new else "refuses"
        pytest.fail(f"the schema walk {verdict} what the re-encoding did not: {data.hex()}")
    if new:
        assert PKIMessage.load(data).dump() == data


# --------------------------------------------------------------------------------------------
# Structural damage that keeps every TLV DER-framed, so that the schema walk is what decides
# --------------------------------------------------------------------------------------------


def _encode(node: Tlv, der: bytes) -> bytes:
    return der[node.start : node.end]


def _tlv(ident: bytes, content: bytes) -> bytes:
    return ident + der_length(len(content)) + content


def _replace(node: Tlv, target: Tlv, der: bytes, new: bytes) -> bytes:
    """The DER of `node` with the element `target` replaced by the octets `new`."""
    if node is target:
        return new
    if not node.children or not (node.start <= target.start and target.end <= node.end):
        return _encode(node, der)
    content = b"".join(_replace(c, target, der, new) for c in node.children)
    return _tlv(node.ident, content)


_PRIMITIVES = [
    "0101ff",
    "010100",
    "010101",
    "020100",
    "0202007f",
    "0500",
    "050100",
    "0400",
    "0403616263",
    "030100",
    "03020080",
    "03020780",
    "0603550403",
    "0c0161",
    "0c01ff",
    "13024142",
    "170d3236303130313030303030305a",
    "180f32303236303130313030303030305a",
    "1811323032363031303130303030302e315a",
    "18123230323630313031303030303030302e305a",
    "80020000",
    "800100",
    "810101",
    "8400",
    "a000",
    "a1030201ff",
    "3000",
    "3100",
]


@st.composite
def structural_damage(draw: st.DrawFn, der: bytes) -> bytes:
    tree = parse_tlv(der)
    nodes = list(tree.walk())
    target = draw(st.sampled_from(nodes), label="target")
    kind = draw(st.sampled_from(["tag", "contents", "drop", "repeat", "swap", "insert"]))
    if kind == "tag":  # same form, another class or number
        ident = target.ident[0] & 0x20 | draw(st.integers(0, 255)) & 0xDF
        if ident & 0x1F == 0x1F:
            ident &= 0xFE
        return _replace(tree, target, der, _tlv(bytes([ident]), target.content))
    if kind == "contents" or not target.constructed:
        if target.constructed:
            contents = bytes.fromhex(draw(st.sampled_from(_PRIMITIVES)))
        else:
            contents = draw(st.binary(max_size=6) | st.sampled_from([target.content[:-1], b""]))
        return _replace(tree, target, der, _tlv(target.ident, contents))
    children = [_encode(c, der) for c in target.children]
    if kind == "drop" and children:
        del children[draw(st.integers(0, len(children) - 1))]
    elif kind == "repeat" and children:
        index = draw(st.integers(0, len(children) - 1))
        children.insert(index, children[index])
    elif kind == "swap" and len(children) > 1:
        i, j = draw(st.lists(st.integers(0, len(children) - 1), min_size=2, max_size=2))
        children[i], children[j] = children[j], children[i]
    else:
        inserted = bytes.fromhex(draw(st.sampled_from(_PRIMITIVES)))
        children.insert(draw(st.integers(0, len(children))), inserted)
    return _replace(tree, target, der, _tlv(target.ident, b"".join(children)))


@_settings(60)
@given(msg=pki_messages(), data=st.data())
def test_structural_damage_same_verdict(msg: PKIMessage, data: st.DataObject) -> None:
    der = msg.dump()
    for _ in range(20):
        assert_same_verdict(data.draw(structural_damage(der)))


@_settings(40)
@given(msg=pki_messages(), data=st.data())
def test_octet_damage_same_verdict(msg: PKIMessage, data: st.DataObject) -> None:
    der = msg.dump()
    nodes = list(parse_tlv(der).walk())
    for _ in range(20):
        assert_same_verdict(mutate(der, nodes, data.draw))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
@_settings(15)
@given(data=st.data())
def test_fixture_damage_same_verdict(path: Path, data: st.DataObject) -> None:
    der = path.read_bytes()
    assert accepts(der)
    for _ in range(10):
        assert_same_verdict(data.draw(structural_damage(der)))


# --------------------------------------------------------------------------------------------
# One non-canonical encoding of each kind the walk checks by hand, next to a canonical one
# --------------------------------------------------------------------------------------------


def reference_accepts_as(spec: type[Asn1Value], data: bytes) -> bool:
    """`reference_accepts` for a value of any spec (these have asn1crypto's own `load`)."""
    try:
        check_der_framing(data)
        value = spec.load(data, strict=True)
        return bool(value.dump(force=True) == data)
    except Exception:
        return False


def _h(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts).replace(" ", ""))


def _t(ident: str, *content: str) -> str:
    body = _h(*content)
    return (bytes.fromhex(ident) + der_length(len(body)) + body).hex()


OID_BASIC_CONSTRAINTS = "0603551d13"
CA_TRUE = _t("30", "0101ff")
AVA_CN = _t("30", "0603550403", "0c0161")  # commonName "a"
AVA_O = _t("30", "060355040a", "0c0162")  # organizationName "b"
RSA_ALG = _t("30", "06092a864886f70d010101", "0500")
ED25519_ALG = _t("30", "06032b6570")

# (spec, canonical DER, the same value or a near one in BER / not fitting the schema, rule)
CASES: list[tuple[type[Asn1Value], str, str, str]] = [
    (PKIStatusInfo, "3003020100", "3006020100020100", "element after the last field"),
    (CertStatus, _t("30", "0400", "020100"), _t("30", "0400"), "required field missing"),
    (CertStatus, _t("30", "0400", "020100"), _t("30", "0c00", "020100"), "wrong universal tag"),
    (
        x509.Extension,
        _t("30", OID_BASIC_CONSTRAINTS, _t("04", CA_TRUE)),
        _t("30", OID_BASIC_CONSTRAINTS, "010100", _t("04", CA_TRUE)),
        "DEFAULT (critical FALSE) present",
    ),
    (
        x509.Extension,
        _t("30", OID_BASIC_CONSTRAINTS, _t("04", "3000")),
        _t("30", OID_BASIC_CONSTRAINTS, _t("04", _t("30", "010100"))),
        "DEFAULT (cA FALSE) present inside an extension value",
    ),
    (
        x509.RelativeDistinguishedName,
        _t("31", AVA_CN, AVA_O),
        _t("31", AVA_O, AVA_CN),
        "SET OF not in ascending order",
    ),
    (x509.GeneralName, "8100", "8900", "CHOICE without an alternative for the tag"),
    (PKIBody, "b3020500", "b30405000500", "two values in an EXPLICIT tag"),
    (PKIBody, "b3020500", "b300", "nothing in an EXPLICIT tag"),
    (PKIBody, "b3020500", "b3020400", "wrong type in an EXPLICIT tag"),
    (CertTemplate, "3003810105", "300481020005", "IMPLICIT INTEGER not minimal"),
    (CertTemplate, "30038101ff", "30048102ffff", "IMPLICIT negative INTEGER not minimal"),
    (CertTemplate, "3003810105", "30028100", "IMPLICIT INTEGER empty"),
    (PKIArchiveOptions, "8201ff", "820101", "IMPLICIT BOOLEAN neither 00 nor FF"),
    (ProofOfPossession, "8000", "800100", "IMPLICIT NULL with contents"),
    (ProofOfPossession, "8000", "a000", "IMPLICIT NULL constructed"),
    (
        POPOSigningKey,
        _t("30", ED25519_ALG, "03020080"),
        _t("30", ED25519_ALG, "03020180"),
        "signature BIT STRING with unused bits",
    ),
    (PKIFreeText, "30030c0161", "30030c01ff", "UTF8String not UTF-8"),
    (IA5String, "160141", "160180", "IA5String not ASCII"),
    (BMPString, "1e020041", "1e0141", "BMPString of an odd length"),
    (
        x509.Extension,
        _t("30", OID_BASIC_CONSTRAINTS, _t("04", CA_TRUE)),
        _t("30", OID_BASIC_CONSTRAINTS, _t("04", CA_TRUE, "0500")),
        "data after the value inside an extension's OCTET STRING",
    ),
    (
        x509.Extension,
        _t("30", OID_BASIC_CONSTRAINTS, _t("04", CA_TRUE)),
        _t("30", OID_BASIC_CONSTRAINTS, _t("04", "3081030101ff")),
        "long-form length inside an extension's OCTET STRING",
    ),
    (
        keys.PublicKeyInfo,
        _t("30", RSA_ALG, _t("03", "00", _t("30", "020105", "020102"))),
        _t("30", RSA_ALG, _t("03", "01", _t("30", "020105", "020102"))),
        "RSA key BIT STRING with unused bits",
    ),
    (
        keys.PublicKeyInfo,
        _t("30", RSA_ALG, _t("03", "00", _t("30", "020105", "020102"))),
        _t("30", RSA_ALG, _t("03", "00", _t("30", "020105", "02020002"))),
        "INTEGER not minimal inside a key BIT STRING",
    ),
    (PKIFailureInfo, "03020780", "0303078000", "named BIT STRING with trailing zero bits"),
    (x509.Time, _t("17", b"260101000000Z".hex()), _t("17", b"2601010000Z".hex()), "UTCTime s"),
    (
        x509.Time,
        _t("17", b"260101000000Z".hex()),
        _t("17", b"260101000000+0100".hex()),
        "UTCTime with an offset",
    ),
    (x509.Time, _t("17", b"491231235959Z".hex()), _t("17", b"261301000000Z".hex()), "month 13"),
    (x509.Time, _t("17", b"500101000000Z".hex()), _t("17", b"260101000000".hex()), "UTCTime Z"),
]
_GENERALIZED_TIMES = [
    ("20260101000000.5Z", "20260101000000.50Z", "fraction with a trailing zero"),
    ("20260101000000.123456Z", "20260101000000.1234567Z", "fraction below a microsecond"),
    ("20260101000000Z", "20260101000000.0Z", "zero fraction"),
    ("20260101000000Z", "20260101000000,5Z", "fraction after a comma"),
    ("20260101000000Z", "202601010000Z", "seconds missing"),
    ("20260101000000Z", "20260101000000", "local time"),
    ("20260101000000Z", "20260101000000+0000", "offset"),
    ("99991231235959Z", "20260230000000Z", "30 February"),
]
CASES += [
    (GeneralizedTime, _t("18", good.encode().hex()), _t("18", bad.encode().hex()), rule)
    for good, bad, rule in _GENERALIZED_TIMES
]


@pytest.mark.parametrize(("spec", "good", "bad", "rule"), CASES, ids=[c[3] for c in CASES])
def test_each_rule_refuses_its_ber(spec: type[Asn1Value], good: str, bad: str, rule: str) -> None:
    good_der, bad_der = bytes.fromhex(good), bytes.fromhex(bad)
    assert reference_accepts_as(spec, good_der), "the canonical example is not DER"
    assert load_der(spec, good_der).dump() == good_der
    load_der(spec, good_der).native  # noqa: B018 - every part converts
    assert not reference_accepts_as(spec, bad_der), "the re-encoding accepted it too"
    with pytest.raises(DecodeError):
        load_der(spec, bad_der)
    with pytest.raises(DecodeError):  # once more: a refusal is never remembered as accepted
        load_der(spec, bad_der)


def _message_with_sender(name: str) -> bytes:
    header = _t("30", "020102", _t("a4", name), "8100")
    return bytes.fromhex(_t("30", header, "b3020500"))


def test_set_of_order_in_a_message() -> None:
    assert accepts(_message_with_sender(_t("30", _t("31", AVA_CN, AVA_O))))
    assert not accepts(_message_with_sender(_t("30", _t("31", AVA_O, AVA_CN))))


def test_implicit_integer_in_a_message() -> None:
    """The framing check sees only universal INTEGERs; [1] IMPLICIT serialNumber is the walk's."""

    def ir(serial: str) -> bytes:
        request = _t("30", "020100", _t("30", serial))
        body = _t("a0", _t("30", _t("30", request)))
        return bytes.fromhex(_t("30", _t("30", "020102", "8100", "8100"), body))

    assert accepts(ir("810105"))
    assert not reference_accepts(ir("81020005")) and not accepts(ir("81020005"))


def test_certificates_carried_are_checked_whole() -> None:
    """A certificate in extraCerts is walked field by field like the rest of the message."""
    cert = CERT_DERS[0]
    message = bytes.fromhex(_t("30", _t("30", "020102", "8100", "8100"), "b3020500"))
    with_cert = bytes.fromhex(
        _t(message[:1].hex(), message[2:].hex(), _t("a1", _t("30", cert.hex())))
    )
    assert accepts(with_cert)
    tree = parse_tlv(with_cert)
    times = [n for n in tree.walk() if n.ident == b"\x17"]
    assert times
    seconds_cut = _replace(tree, times[0], with_cert, _tlv(b"\x17", times[0].content[:10] + b"Z"))
    assert not reference_accepts(seconds_cut) and not accepts(seconds_cut)


def _certificate_plan_memo() -> dict[tuple[int, bytes], None]:
    """Every value the walk remembers as proven (certificates and short constructed values)."""
    from sanscmp.engine.asn1 import der

    memos = [p.proven for _, p in der._PLANS.values() if p.proven]
    assert memos, "no plan remembers proven values"
    merged: dict[tuple[int, bytes], None] = {}
    for memo in memos:
        merged.update(memo)
    return merged


def test_carried_certificates_are_proven_once_and_damage_is_still_refused() -> None:
    """A certificate proven DER is not walked again at the same depth; other octets are."""
    request = (Path(__file__).parent / "fixtures" / "openssl" / "cr-sig.0.req.der").read_bytes()
    message = PKIMessage.load(request)
    certificate = message["extraCerts"][0].dump()
    assert any(key[1] == certificate for key in _certificate_plan_memo())
    assert PKIMessage.load(request).dump() == request  # a hit gives the same message
    # the certificate's version field, INTEGER 2 inside [0], re-encoded as a non-minimal INTEGER
    at = request.index(certificate) + certificate.index(bytes.fromhex("a003020102"))
    damaged = request[:at] + bytes.fromhex("a00402020002") + request[at + 5 :]
    with pytest.raises(DecodeError):
        PKIMessage.load(damaged)
    assert reference_accepts(damaged) is False


def test_small_values_are_proven_once_and_their_ber_is_still_refused() -> None:
    """A short constructed value (here the protectionAlg AlgorithmIdentifier) proven DER is
    remembered by its octets; the same value in BER is other octets, and still refused."""
    request = (Path(__file__).parent / "fixtures" / "openssl" / "cr-sig.0.req.der").read_bytes()
    PKIMessage.load(request)
    header, *rest = split(contents_of(request))
    fields = split(contents_of(header))
    tagged = next(field for field in fields if field[0] == 0xA1)  # protectionAlg [1]
    algorithm = contents_of(tagged)
    assert any(key[1] == algorithm for key in _certificate_plan_memo())
    ber = b"\x30\x81" + algorithm[1:]  # the same SEQUENCE with a long-form length
    damaged = sequence(sequence(*(explicit(1, ber) if f is tagged else f for f in fields)), *rest)
    with pytest.raises(DecodeError):
        PKIMessage.load(damaged)
    assert reference_accepts(damaged) is False
    assert PKIMessage.load(request).dump() == request


@given(
    first=st.integers(0, 2),
    second=st.integers(0, 39),
    rest=st.lists(st.integers(0, 2**64), max_size=6),
    big_second=st.integers(40, 2**20),
)
def test_oid_dotted_reads_what_asn1crypto_writes(
    first: int, second: int, rest: list[int], big_second: int
) -> None:
    for arcs in ([first, second, *rest], [2, big_second, *rest]):
        dotted = ".".join(map(str, arcs))
        assert oid_dotted(ObjectIdentifier(dotted).contents) == dotted


@pytest.mark.parametrize("contents", [b"", b"\x2a\x86", b"\x80\x01", b"\x2a\x80\x01"])
def test_oid_dotted_refuses_what_is_not_der(contents: bytes) -> None:
    with pytest.raises(ValueError):
        oid_dotted(contents)
