"""What a CertTemplate asks for (RFC 4211 5), read straight from the template's DER.

The CA reads the public key, subject, validity, subjectAltName and basicConstraints of every
template it issues for. Through asn1crypto that builds an object per field and converts every
name attribute and every extension with `.native`: ~0.1 ms for a one-attribute subject, ~0.4 ms
with a few extensions. A template in DER is read here in one walk over its TLVs instead, name
attributes decoded with the codecs asn1crypto uses for them. Whatever the walk does not read (a
string type it does not decode, a time not in DER form, a structure that is not DER) is read
through asn1crypto as before, with the same result or the same `ValueError`.

What the walk only copies or skips (the key's algorithm, the subjectAltName's names, the other
extensions) it does not convert, where asn1crypto's `.native` did: for a received template that
proof is the engine's, which accepts a message only if every value in it converts
(`PKIMessage.load`, engine/asn1/der.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from asn1crypto.x509 import Extensions as AsnExtensions
from asn1crypto.x509 import Name as AsnName
from cryptography import x509

from sanscmp.engine.asn1 import CertTemplate, oid_dotted
from sanscmp.engine.encode import contents_of, split, tlv

from .authority import CertificateRequest

NO_PUBLIC_KEY = "no public key (central key generation is not offered)"

# CertTemplate fields by identifier octet (RFC 4211 5: IMPLICIT tags, Name EXPLICIT)
_FIELDS = {0x80: 0, 0x81: 1, 0xA2: 2, 0xA3: 3, 0xA4: 4, 0xA5: 5, 0xA6: 6, 0x87: 7, 0x88: 8, 0xA9: 9}
_VALIDITY, _SUBJECT, _PUBLIC_KEY, _EXTENSIONS = 4, 5, 6, 9
_BOOLEAN = 0x01
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_OID = 0x06
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_SEQUENCE = 0x30
_SET = 0x31
_SAN = b"\x06\x03\x55\x1d\x11"  # id-ce-subjectAltName
_BASIC_CONSTRAINTS = b"\x06\x03\x55\x1d\x13"  # id-ce-basicConstraints
_UTC_TIME_FORM = re.compile(rb"(\d\d)(\d{10})Z")  # YYMMDDhhmmssZ
_GENERALIZED_TIME_FORM = re.compile(rb"(\d{4})(\d{10})(?:\.(\d{1,6}))?Z")  # YYYYMMDDhhmmss[.f]Z

_Decoder = Callable[[bytes], str]


def template_request(template: CertTemplate) -> CertificateRequest:
    """The public key, subject, SANs, CA flag and validity `template` asks for.

    `ValueError` if it asks for no usable certificate (no public key, a malformed field).
    """
    # Its contents, not `dump()`: asn1crypto takes a length whose last octet is 0x80 (e.g. 128)
    # for an indefinite one and re-encodes the whole template, every value through `.native`.
    contents = template.contents
    if contents is not None:
        try:
            return _read_der(tlv(_SEQUENCE, contents))
        except (ValueError, IndexError):
            pass
    return _read_parsed(template)


def name_from_asn1(name: AsnName) -> x509.Name:
    """An asn1crypto Name as a `cryptography` Name, attribute by attribute."""
    return x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(
                        x509.ObjectIdentifier(attr["type"].dotted), str(attr["value"].native)
                    )
                    for attr in rdn
                ]
            )
            for rdn in name.chosen
        ]
    )


def requested_extensions(extensions: AsnExtensions | None) -> tuple[bytes | None, bool]:
    """(DER GeneralNames of subjectAltName or None, whether basicConstraints asks for a CA)."""
    sans, ca = None, False
    for extension in extensions or ():
        kind = extension["extn_id"].native
        if kind == "subject_alt_name":
            sans = extension["extn_value"].parsed.dump()
        elif kind == "basic_constraints":
            ca = bool(extension["extn_value"].parsed["ca"].native)
    return sans, ca


def _read_parsed(template: CertTemplate) -> CertificateRequest:
    """The request through asn1crypto's reading of every field (for any template)."""
    if template["publicKey"].native is None:
        raise ValueError(NO_PUBLIC_KEY)
    subject = template["subject"]
    name = x509.Name([]) if subject.native is None else name_from_asn1(subject)
    extensions = template["extensions"]
    requested = requested_extensions(extensions if extensions.native is not None else None)
    validity = template["validity"]
    not_before = not_after = None
    if validity.native is not None:
        not_before = validity["notBefore"].native
        not_after = validity["notAfter"].native
    return CertificateRequest(
        template["publicKey"].untag().dump(), name, *requested, not_before, not_after
    )


# ---- the DER walk --------------------------------------------------------------------------


def _read_der(der: bytes) -> CertificateRequest:
    """The request from a template in DER; `ValueError` (or `IndexError`) for anything else."""
    if der[0] != _SEQUENCE:
        raise ValueError("not a SEQUENCE")
    fields: dict[int, bytes] = {}
    last = -1
    for part in split(contents_of(der)):
        number = _FIELDS.get(part[0], -1)
        if number <= last:
            raise ValueError("unknown or misplaced CertTemplate field")
        fields[number] = part
        last = number
    public_key = fields.get(_PUBLIC_KEY)
    if public_key is None:
        raise ValueError(NO_PUBLIC_KEY)
    subject = fields.get(_SUBJECT)
    extensions = fields.get(_EXTENSIONS)
    validity = fields.get(_VALIDITY)
    sans, ca = (None, False) if extensions is None else _extensions(extensions)
    not_before, not_after = (None, None) if validity is None else _validity(validity)
    return CertificateRequest(
        _public_key_info(public_key),
        x509.Name([]) if subject is None else _name(subject),
        sans,
        ca,
        not_before,
        not_after,
    )


def _public_key_info(field: bytes) -> bytes:
    """`[6] IMPLICIT SubjectPublicKeyInfo` as a SubjectPublicKeyInfo: its octets, retagged."""
    parts = split(contents_of(field))
    if len(parts) != 2 or parts[0][0] != _SEQUENCE or parts[1][0] != _BIT_STRING:
        raise ValueError("algorithm and subjectPublicKey expected")
    if contents_of(parts[1])[:1] != b"\x00":
        raise ValueError("key bits must be whole octets")
    return bytes((_SEQUENCE,)) + field[1:]


def _name(field: bytes) -> x509.Name:
    """`[5] EXPLICIT Name`: its RDNSequence, attribute by attribute."""
    (rdn_sequence,) = split(contents_of(field))
    if rdn_sequence[0] != _SEQUENCE:
        raise ValueError("RDNSequence expected")
    rdns = []
    for rdn in split(contents_of(rdn_sequence)):
        if rdn[0] != _SET:
            raise ValueError("RelativeDistinguishedName expected")
        attributes = [_attribute(encoded) for encoded in split(contents_of(rdn))]
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _attribute(encoded: bytes) -> x509.NameAttribute[str]:
    """One AttributeTypeAndValue, its value decoded as asn1crypto's `.native` decodes it."""
    if encoded[0] != _SEQUENCE:
        raise ValueError("AttributeTypeAndValue expected")
    kind, value = split(contents_of(encoded))
    if kind[0] != _OID:
        raise ValueError("attribute type expected")
    known = _ATTRIBUTE_TYPES.get(kind)
    if known is None:  # a type asn1crypto does not name: its value is read as its tag says
        oid, decoders = x509.ObjectIdentifier(oid_dotted(contents_of(kind))), _UNIVERSAL
    else:
        oid, decoders = known
    decode = decoders.get(value[0])
    if decode is None:
        raise ValueError("attribute value type not decoded here")
    return x509.NameAttribute(oid, decode(contents_of(value)))


def _extensions(field: bytes) -> tuple[bytes | None, bool]:
    """`[9] IMPLICIT Extensions`: the subjectAltName's GeneralNames and basicConstraints' cA."""
    sans, ca = None, False
    for extension in split(contents_of(field)):
        if extension[0] != _SEQUENCE:
            raise ValueError("Extension expected")
        parts = split(contents_of(extension))
        if (
            not 2 <= len(parts) <= 3
            or parts[0][0] != _OID
            or parts[-1][0] != _OCTET_STRING
            or (len(parts) == 3 and parts[1][0] != _BOOLEAN)
        ):
            raise ValueError("extnID, critical, extnValue expected")
        kind = parts[0]
        if kind == _SAN:
            sans = _only(contents_of(parts[-1]), _SEQUENCE)
        elif kind == _BASIC_CONSTRAINTS:
            ca = _ca_flag(contents_of(parts[-1]))
        else:
            oid_dotted(contents_of(kind))  # a minimal OID: not another spelling of the two above
    return sans, ca


def _only(encoded: bytes, tag: int) -> bytes:
    """The one TLV `encoded` holds, which must have identifier octet `tag`."""
    (value,) = split(encoded)
    if value[0] != tag:
        raise ValueError(f"tag {tag:#x} expected")
    return value


def _ca_flag(encoded: bytes) -> bool:
    """BasicConstraints' cA (DEFAULT FALSE), from the DER of the extension's value."""
    parts = split(contents_of(_only(encoded, _SEQUENCE)))
    ca = False
    if parts and parts[0][0] == _BOOLEAN:
        flag = contents_of(parts[0])
        if len(flag) != 1:
            raise ValueError("BOOLEAN of one octet expected")
        ca = flag != b"\x00"
        parts = parts[1:]
    if len(parts) > 1 or (parts and parts[0][0] != _INTEGER):
        raise ValueError("pathLenConstraint expected")
    return ca


def _validity(field: bytes) -> tuple[datetime | None, datetime | None]:
    """`[4] IMPLICIT OptionalValidity`: notBefore `[0]` and notAfter `[1]`, each optional."""
    times: list[datetime | None] = [None, None]
    last = -1
    for part in split(contents_of(field)):
        number = part[0] - 0xA0
        if not last < number <= 1:
            raise ValueError("notBefore or notAfter expected")
        (time,) = split(contents_of(part))
        times[number] = _time(time)
        last = number
    return times[0], times[1]


def _time(encoded: bytes) -> datetime:
    """A Time in DER form: UTCTime YYMMDDhhmmssZ or GeneralizedTime YYYYMMDDhhmmss[.f]Z."""
    if encoded[0] == _UTC_TIME:
        match = _UTC_TIME_FORM.fullmatch(contents_of(encoded))
        if match is None:
            raise ValueError("UTCTime not in DER form")
        year = int(match[1])
        year += 2000 if year < 50 else 1900  # as X.509 and asn1crypto read it
        fraction = None
    elif encoded[0] == _GENERALIZED_TIME:
        match = _GENERALIZED_TIME_FORM.fullmatch(contents_of(encoded))
        if match is None:
            raise ValueError("GeneralizedTime not in the form read here")
        year, fraction = int(match[1]), match[3]
    else:
        raise ValueError("UTCTime or GeneralizedTime expected")
    rest = match[2]
    month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    micros = int(fraction.ljust(6, b"0")) if fraction else 0
    return datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)


# ---- string decoding, as asn1crypto does it ------------------------------------------------


def _codec(encoding: str) -> _Decoder:
    return lambda contents: contents.decode(encoding)


def _directory_teletex(contents: bytes) -> str:
    """A DirectoryString's TeletexString: asn1crypto reads it as cp1252 unless told otherwise."""
    encoding: str = asn1_x509.NotReallyTeletexString._decoding_encoding
    return contents.decode(encoding)


def _email(contents: bytes) -> str:
    """An EmailAddress as asn1crypto reads it: the mailbox as cp1252, the domain as IDNA."""
    mailbox, at, domain = contents.rpartition(b"@")
    if not at:
        return contents.decode("cp1252")
    return mailbox.decode("cp1252") + "@" + domain.decode("idna")


def _decoders(*classes: type[core.AbstractString]) -> dict[int, _Decoder]:
    """Decoders by universal tag for values of these string classes (each with its encoding)."""
    return {cls.tag: _codec(cls._encoding) for cls in classes}


# a type asn1crypto does not name: `Any`, read as the universal class its tag gives
_UNIVERSAL = _decoders(
    core.UTF8String,
    core.NumericString,
    core.PrintableString,
    core.TeletexString,
    core.IA5String,
    core.VisibleString,
    core.UniversalString,
    core.BMPString,
)
_IDNA_TAGS = (0x16, 0x0C, 0x13)  # IA5String, and the UTF8String and PrintableString tolerated
# the value types asn1crypto gives the attribute types it names (NameTypeAndValue._oid_specs)
_BY_SPEC: dict[type, dict[int, _Decoder]] = {
    asn1_x509.DirectoryString: {
        **_decoders(
            core.PrintableString,
            core.UniversalString,
            core.UTF8String,
            core.BMPString,
            core.IA5String,
        ),
        core.TeletexString.tag: _directory_teletex,
    },
    core.PrintableString: _decoders(core.PrintableString),
    core.UTF8String: _decoders(core.UTF8String),
    asn1_x509.EmailAddress: dict.fromkeys(_IDNA_TAGS, _email),
    asn1_x509.DNSName: dict.fromkeys(_IDNA_TAGS, _codec("idna")),
}


def _attribute_types() -> dict[bytes, tuple[x509.ObjectIdentifier, dict[int, _Decoder]]]:
    """The attribute types asn1crypto names, by DER OID: the OID and how their values decode.

    A type whose value class is not decoded here (e.g. uniqueIdentifier) maps to no decoders:
    asn1crypto reads it.
    """
    table = {}
    for dotted, name in asn1_x509.NameType._map.items():
        spec = asn1_x509.NameTypeAndValue._oid_specs.get(name)
        decoders = _UNIVERSAL if spec is None else _BY_SPEC.get(spec, {})
        table[core.ObjectIdentifier(dotted).dump()] = (x509.ObjectIdentifier(dotted), decoders)
    return table


_ATTRIBUTE_TYPES = _attribute_types()
