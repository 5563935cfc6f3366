"""Decode the same bytes with pyasn1-alt-modules (rfc9810) and with our asn1crypto definitions.

Both are reduced to one neutral tree: named fields, list items and CHOICE names as structure, and
the DER bytes of every leaf. X.509/CMS types that both sides import from elsewhere (certificates,
names, algorithm identifiers, ...) count as leaves, as do open-type values (infoValue, values).
"""

from __future__ import annotations

from typing import Any

from asn1crypto import cms, crl, csr, keys, x509
from asn1crypto import core as ac
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import base, univ
from pyasn1_alt_modules import rfc5280, rfc5652, rfc6402, rfc9810

from sanscmp.engine.asn1 import AlgorithmIdentifier, PKIMessage

OPEN_TYPE_FIELDS = {"infoValue", "value"}

PYASN1_LEAVES = (
    rfc5280.Certificate,
    rfc5280.CertificateList,
    rfc5280.Name,
    rfc5280.GeneralName,
    rfc5280.GeneralNames,
    rfc5280.AlgorithmIdentifier,
    rfc5280.Extensions,
    rfc5280.SubjectPublicKeyInfo,
    rfc5280.Time,
    rfc5280.DistributionPointName,
    rfc6402.CertificationRequest,
    rfc5652.EnvelopedData,
)
ASN1CRYPTO_LEAVES = (
    x509.Certificate,
    crl.CertificateList,
    x509.Name,
    x509.GeneralName,
    x509.GeneralNames,
    AlgorithmIdentifier,
    x509.Extensions,
    keys.PublicKeyInfo,
    x509.Time,
    x509.DistributionPointName,
    csr.CertificationRequest,
    cms.EnvelopedData,
)


def pyasn1_tree(value: base.Asn1Item, name: str = "") -> Any:
    """The neutral tree of a pyasn1 value."""
    if name in OPEN_TYPE_FIELDS or isinstance(value, PYASN1_LEAVES):
        return ("der", bytes(der_encoder.encode(value)))
    if isinstance(value, univ.Choice):
        chosen = value.getName()
        return {chosen: pyasn1_tree(value.getComponent(), chosen)}
    if isinstance(value, univ.Sequence | univ.Set):
        out = {}
        for field in value.componentType.namedTypes:
            child = value.getComponentByName(field.name, instantiate=False)
            if child is not univ.noValue and child.isValue:
                out[field.name] = pyasn1_tree(child, field.name)
        return out
    if isinstance(value, univ.SequenceOf | univ.SetOf):
        return [pyasn1_tree(item) for item in value]
    return ("der", bytes(der_encoder.encode(value)))


def asn1crypto_tree(value: ac.Asn1Value, name: str = "") -> Any:
    """The neutral tree of an asn1crypto value."""
    if name in OPEN_TYPE_FIELDS or isinstance(value, ASN1CRYPTO_LEAVES):
        return ("der", value.dump())
    if isinstance(value, ac.Choice):
        return {value.name: asn1crypto_tree(value.chosen, value.name)}
    if isinstance(value, ac.Sequence | ac.Set):
        out = {}
        for field_name, _spec, _params in value._fields:
            child = value[field_name]
            if not isinstance(child, ac.Void):
                out[field_name] = asn1crypto_tree(child, field_name)
        return out
    if isinstance(value, ac.SequenceOf | ac.SetOf):
        return [asn1crypto_tree(item) for item in value]
    return ("der", value.dump())


def both_trees(der: bytes) -> tuple[Any, Any]:
    """(pyasn1 tree, our tree) of one DER PKIMessage; pyasn1 must consume every byte."""
    theirs, rest = der_decoder.decode(der, asn1Spec=rfc9810.PKIMessage(), decodeOpenTypes=True)
    assert rest == b"", "pyasn1 left trailing bytes"
    return pyasn1_tree(theirs), asn1crypto_tree(PKIMessage.load(der))
