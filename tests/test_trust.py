"""Who protected a message: signer selection (sender, senderKID, extraCerts) and path validation.

Also home of the small test PKI (`issue`, `signing_key`) the protection tests share.
"""

from __future__ import annotations

import datetime as dt
import functools
import os

import pytest
from asn1crypto.core import OctetBitString
from asn1crypto.x509 import Certificate, GeneralName, Name
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.errors import BadMessageCheck, CmpError, SignerNotTrusted
from sanscmp.engine.protection import (
    ProtectionKind,
    SignatureCredential,
    protect,
    verify_protection,
)
from sanscmp.engine.signature import SigningKey, default_algorithm, sign
from sanscmp.engine.trust import TrustConfig, signer_candidates, validate_signer

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
ID_KP_CMC_RA = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.28")

# ---- the test PKI -----------------------------------------------------------------------------


@functools.cache
def signing_key(kind: str) -> SigningKey:
    """One key per kind and test session: key generation dominates otherwise."""
    makers = {
        "rsa": lambda: rsa.generate_private_key(65537, 2048),
        "rsa-b": lambda: rsa.generate_private_key(65537, 2048),
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p256-b": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "ed448": ed448.Ed448PrivateKey.generate,
        "ml-dsa-44": mldsa.MLDSA44PrivateKey.generate,
        "ml-dsa-65": mldsa.MLDSA65PrivateKey.generate,
        "ml-dsa-87": mldsa.MLDSA87PrivateKey.generate,
    }
    key: SigningKey = makers[kind]()
    return key


def dn(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sanscmp test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def issue(
    subject: str,
    key: SigningKey,
    issuer: x509.Certificate | None = None,
    issuer_key: SigningKey | None = None,
    *,
    ca: bool = False,
    key_usage: x509.KeyUsage | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    skid: bool = True,
    not_before: dt.datetime = NOW - dt.timedelta(days=1),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
) -> x509.Certificate:
    """A certificate for `key`; self-signed without `issuer`. CAs get BC, KU and SKID."""
    signer = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(dn(subject))
        .issuer_name(issuer.subject if issuer else dn(subject))
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if skid:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                signer.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(True, None), critical=True)
        key_usage = key_usage or x509.KeyUsage(
            False, False, False, False, False, True, True, False, False
        )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    hash_alg = (
        hashes.SHA256()
        if isinstance(signer, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        else None
    )
    return builder.sign(signer, hash_alg)  # type: ignore[arg-type]


def ku(*, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature, False, True, False, False, False, False, False, False)


@functools.cache
def root() -> x509.Certificate:
    return issue("root", signing_key("rsa"), ca=True)


@functools.cache
def intermediate() -> x509.Certificate:
    return issue("intermediate", signing_key("p384"), root(), signing_key("rsa"), ca=True)


def leaf(kind: str = "p256", **kw: object) -> x509.Certificate:
    """An end-entity certificate for `kind` under the intermediate."""
    return issue(f"leaf {kind}", signing_key(kind), intermediate(), signing_key("p384"), **kw)  # type: ignore[arg-type]


def unprotected(sender: x509.Name | None = None, sender_kid: bytes | None = None) -> PKIMessage:
    """A small genm with fresh transactionID and senderNonce."""
    header: dict[str, object] = {
        "pvno": 2,
        "sender": _general_name(sender),
        "recipient": _general_name(dn("server")),
        "transactionID": os.urandom(16),
        "senderNonce": os.urandom(16),
    }
    if sender_kid is not None:
        header["senderKID"] = sender_kid
    return PKIMessage({"header": header, "body": {"genm": [{"infoType": "caCerts"}]}})


def der_sequence(content: bytes) -> bytes:
    """SEQUENCE { content } in DER, written out by hand (X.690 8.1.3)."""
    if len(content) < 0x80:
        return b"\x30" + bytes([len(content)]) + content
    if len(content) < 0x100:
        return b"\x30\x81" + bytes([len(content)]) + content
    assert len(content) < 0x10000
    return b"\x30\x82" + len(content).to_bytes(2, "big") + content


def sign_by_hand(msg: PKIMessage, key: SigningKey, extra: list[x509.Certificate]) -> PKIMessage:
    """Sign SEQUENCE { header, body } directly, without protect(): an independent reference."""
    header = msg["header"].copy()
    header["protectionAlg"] = default_algorithm(key)
    body = msg["body"].dump()
    value = sign(key, header["protectionAlg"], der_sequence(header.dump() + body))
    parts = {
        "header": header,
        "body": msg["body"],
        "protection": OctetBitString(value),
        "extraCerts": [Certificate.load(c.public_bytes(Encoding.DER)) for c in extra],
    }
    return PKIMessage.load(PKIMessage(parts).dump())


def _general_name(name: x509.Name | None) -> GeneralName:
    asn1 = Name.load(name.public_bytes()) if name is not None else Name.build({})
    return GeneralName({"directory_name": asn1})


def signed(
    cert: x509.Certificate,
    kind: str = "p256",
    chain: tuple[x509.Certificate, ...] | None = None,
    msg: PKIMessage | None = None,
) -> PKIMessage:
    """`msg` (default: a genm) signed with `kind`'s key, reloaded from its DER."""
    chain = (intermediate(),) if chain is None else chain
    credential = SignatureCredential(signing_key(kind), cert, chain)
    return PKIMessage.load(
        protect(msg or unprotected(), credential, random_bytes=os.urandom).dump()
    )


def trusted(**kw: object) -> TrustConfig:
    return TrustConfig(anchors=(root(),), **kw)  # type: ignore[arg-type]


def check(msg: PKIMessage, config: TrustConfig, now: dt.datetime = NOW) -> x509.Certificate:
    result = verify_protection(msg, now=now, trust=config)
    assert result.kind is ProtectionKind.SIGNATURE
    assert result.certificate is not None
    return result.certificate


def replace_header(msg: PKIMessage, **fields: object) -> PKIMessage:
    """`msg` with header fields replaced (protection kept), reloaded from DER."""
    header = msg["header"].copy()
    for name, value in fields.items():
        header[name] = value
    parts = {"header": header, "body": msg["body"], "protection": msg["protection"]}
    if msg["extraCerts"].native is not None:
        parts["extraCerts"] = msg["extraCerts"]
    return PKIMessage.load(PKIMessage(parts).dump())


# ---- good paths -------------------------------------------------------------------------------


def test_chain_through_intermediate_in_extra_certs() -> None:
    cert = leaf()
    result = verify_protection(signed(cert), now=NOW, trust=trusted())
    assert result.certificate == cert
    assert result.chain == (cert, intermediate(), root())


def test_intermediate_known_locally_instead_of_sent() -> None:
    cert = leaf()
    msg = signed(cert, chain=())
    with pytest.raises(SignerNotTrusted):
        check(msg, trusted())
    assert check(msg, trusted(intermediates=(intermediate(),))) == cert


def test_leaf_directly_under_root() -> None:
    cert = issue("direct", signing_key("p256"), root(), signing_key("rsa"))
    assert check(signed(cert, chain=()), trusted()) == cert


def test_no_eku_no_san_and_a_digital_signature_key_usage_are_fine() -> None:
    cert = leaf(key_usage=ku(digital_signature=True))
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical
    assert check(signed(cert), trusted()) == cert


def test_ca_without_key_usage_is_accepted() -> None:
    """`openssl req -x509` CAs carry basicConstraints but no KeyUsage (RFC 5280 6.1.4 (n))."""
    key = signing_key("rsa-b")
    builder = (
        x509.CertificateBuilder()
        .subject_name(dn("bare root"))
        .issuer_name(dn("bare root"))
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(True, None), critical=True)
    )
    bare_root = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    cert = issue("under bare", signing_key("p256"), bare_root, key)
    assert check(signed(cert, chain=()), TrustConfig(anchors=(bare_root,))) == cert


def test_null_dn_sender_skips_the_name_check() -> None:
    cert = leaf()
    msg = sign_by_hand(unprotected(), signing_key("p256"), [cert, intermediate()])
    assert msg["header"]["sender"].chosen.native == {}
    assert check(msg, trusted()) == cert


def test_a_matching_later_extra_cert_is_found() -> None:
    """Like OpenSSL, a wrong first extraCerts entry does not hide the real signer."""
    cert = leaf()
    other = leaf("p256-b")
    msg = signed(cert)
    certs = [other, cert, intermediate()]
    assert signer_candidates(msg["header"], certs, trusted()) == [cert]


def test_signer_candidates_are_bounded() -> None:
    cert = leaf()
    msg = signed(cert)
    many = [cert] * 3 + [leaf() for _ in range(10)]  # distinct serials, same name and key
    assert len(signer_candidates(msg["header"], many, trusted())) == 4
    assert len(signer_candidates(msg["header"], many, trusted(max_signer_candidates=2))) == 2


def test_expired_certificate_first_and_its_renewal_later() -> None:
    """Like OpenSSL, every certificate that fits and verifies is tried for a trusted path."""
    old = leaf(not_after=NOW - dt.timedelta(days=1))
    renewed = leaf()
    msg = signed(old, chain=(renewed, intermediate()))
    assert [c.dump() for c in msg["extraCerts"]][:2] == [
        c.public_bytes(Encoding.DER) for c in (old, renewed)
    ]
    assert check(msg, trusted()) == renewed
    with pytest.raises(SignerNotTrusted, match="not valid"):
        check(signed(old), trusted())


def test_leaf_that_is_itself_a_trust_anchor_needs_no_extra_certs() -> None:
    cert = issue("self", signing_key("p256"))
    msg = PKIMessage.load(
        protect(
            unprotected(),
            SignatureCredential(signing_key("p256"), cert),
            random_bytes=os.urandom,
        ).dump()
    )
    stripped = PKIMessage.load(
        PKIMessage(
            {"header": msg["header"], "body": msg["body"], "protection": msg["protection"]}
        ).dump()
    )
    assert check(stripped, TrustConfig(anchors=(cert,))) == cert


def test_required_eku() -> None:
    with_ra = leaf(eku=[ID_KP_CMC_RA])
    assert check(signed(with_ra), trusted(extended_key_usage=ID_KP_CMC_RA)) == with_ra
    with pytest.raises(SignerNotTrusted, match=r"2\.5\.29\.37"):  # no EKU at all
        check(signed(leaf()), trusted(extended_key_usage=ID_KP_CMC_RA))
    client_auth = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.2")
    with pytest.raises(SignerNotTrusted, match="ExtendedKeyUsage lacks"):
        check(signed(leaf(eku=[client_auth])), trusted(extended_key_usage=ID_KP_CMC_RA))


# ---- untrusted signers ------------------------------------------------------------------------


def test_expired_leaf() -> None:
    cert = leaf(not_after=NOW - dt.timedelta(seconds=1))
    with pytest.raises(SignerNotTrusted, match="not valid"):
        check(signed(cert), trusted())


def test_not_yet_valid_leaf() -> None:
    cert = leaf(not_before=NOW + dt.timedelta(hours=1))
    with pytest.raises(SignerNotTrusted):
        check(signed(cert), trusted())


def test_validity_is_judged_at_now() -> None:
    cert = leaf(not_after=NOW + dt.timedelta(days=2))
    msg = signed(cert)
    assert check(msg, trusted(), now=NOW + dt.timedelta(days=1)) == cert
    with pytest.raises(SignerNotTrusted):
        check(msg, trusted(), now=NOW + dt.timedelta(days=3))


def test_expired_intermediate() -> None:
    old = issue(
        "old intermediate",
        signing_key("p384"),
        root(),
        signing_key("rsa"),
        ca=True,
        not_after=NOW - dt.timedelta(days=1),
    )
    cert = issue("under old", signing_key("p256"), old, signing_key("p384"))
    with pytest.raises(SignerNotTrusted):
        check(signed(cert, chain=(old,)), trusted())


def test_untrusted_root() -> None:
    other_root = issue("other root", signing_key("rsa-b"), ca=True)
    with pytest.raises(SignerNotTrusted):
        check(signed(leaf()), TrustConfig(anchors=(other_root,)))


def test_root_sent_in_extra_certs_is_not_trusted_for_that() -> None:
    fake_root = issue("root", signing_key("rsa-b"), ca=True)  # same name, other key
    fake_leaf = issue("leaf", signing_key("p256"), fake_root, signing_key("rsa-b"))
    with pytest.raises(SignerNotTrusted):
        check(signed(fake_leaf, chain=(fake_root,)), trusted())


def test_key_usage_without_digital_signature() -> None:
    cert = leaf(key_usage=ku(digital_signature=False))
    with pytest.raises(SignerNotTrusted, match="digitalSignature"):
        check(signed(cert), trusted())


def test_ca_key_usage_without_key_cert_sign() -> None:
    no_sign = issue(
        "no certsign",
        signing_key("p384"),
        root(),
        signing_key("rsa"),
        ca=True,
        key_usage=ku(digital_signature=True),
    )
    cert = issue("under no certsign", signing_key("p256"), no_sign, signing_key("p384"))
    with pytest.raises(SignerNotTrusted, match="keyCertSign"):
        check(signed(cert, chain=(no_sign,)), trusted())


def test_no_anchors_configured() -> None:
    with pytest.raises(SignerNotTrusted, match="no trust anchors"):
        check(signed(leaf()), TrustConfig())


def test_no_extra_certs_and_nothing_known() -> None:
    msg = signed(leaf())
    bare = PKIMessage.load(
        PKIMessage(
            {"header": msg["header"], "body": msg["body"], "protection": msg["protection"]}
        ).dump()
    )
    with pytest.raises(SignerNotTrusted, match="extraCerts is empty"):
        check(bare, TrustConfig(anchors=(root(),)))


def test_eddsa_issuers_are_outside_the_validator() -> None:
    """cryptography's verifier only accepts RSA, ECDSA and ML-DSA issuer keys (Web PKI list)."""
    ed_root = issue("ed root", signing_key("ed25519"), ca=True)
    cert = issue("under ed", signing_key("p256"), ed_root, signing_key("ed25519"))
    with pytest.raises(SignerNotTrusted, match="public key algorithm"):
        check(signed(cert, chain=()), TrustConfig(anchors=(ed_root,)))
    # pinning the end-entity certificate needs no issuer signature check
    assert check(signed(cert, chain=()), TrustConfig(pinned=cert)) == cert


# ---- sender and senderKID ---------------------------------------------------------------------


def test_sender_mismatch() -> None:
    msg = replace_header(signed(leaf()), sender=_general_name(dn("someone else")))
    with pytest.raises(BadMessageCheck, match="sender is not the subject"):
        check(msg, trusted())


def test_sender_name_compared_the_rfc_5280_way() -> None:
    cert = leaf()
    folded = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SANSCMP  Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, "LEAF p256"),
        ]
    )
    msg = replace_header(signed(cert), sender=_general_name(folded))
    assert signer_candidates(msg["header"], [cert], trusted()) == [cert]


def test_names_that_string_preparation_refuses() -> None:
    """RFC 4518 prohibits private-use characters: only byte-identical names then match."""
    key = signing_key("p256")
    odd = issue("odd \ue000 name", key, intermediate(), signing_key("p384"))
    msg = signed(odd)
    assert check(msg, trusted()) == odd
    other = replace_header(msg, sender=_general_name(dn("odd \ue001 name")))
    with pytest.raises(BadMessageCheck, match="sender"):
        check(other, trusted())


def test_sender_kid_mismatch() -> None:
    msg = replace_header(signed(leaf()), senderKID=b"\x01" * 20)
    with pytest.raises(BadMessageCheck, match="senderKID"):
        check(msg, trusted())


def test_sender_kid_but_certificate_without_skid() -> None:
    cert = leaf(skid=False)
    msg = signed(cert)
    assert msg["header"]["senderKID"].native is None  # protect() sets none
    assert check(msg, trusted()) == cert
    with pytest.raises(BadMessageCheck, match="senderKID"):
        signer_candidates(replace_header(msg, senderKID=b"\x02" * 20)["header"], [cert], trusted())


def test_non_directory_name_sender() -> None:
    msg = replace_header(signed(leaf()), sender=GeneralName({"rfc822_name": "client@example.com"}))
    with pytest.raises(BadMessageCheck, match="directoryName"):
        check(msg, trusted())


# ---- pinned -----------------------------------------------------------------------------------


def test_pinned_certificate() -> None:
    cert = leaf()
    assert check(signed(cert, chain=()), TrustConfig(pinned=cert)) == cert


def test_pinned_certificate_is_the_only_signer() -> None:
    cert = leaf()
    other = leaf("p256-b")
    with pytest.raises(BadMessageCheck, match="pinned"):
        check(signed(other, "p256-b"), TrustConfig(pinned=cert))
    with pytest.raises(SignerNotTrusted, match="pinned"):
        validate_signer(other, [], TrustConfig(pinned=cert), NOW)


def test_pinned_certificate_must_be_valid_now() -> None:
    cert = leaf(not_after=NOW - dt.timedelta(days=1))
    with pytest.raises(SignerNotTrusted, match="not valid"):
        check(signed(cert), TrustConfig(pinned=cert))


def test_signature_by_another_key_with_the_same_name() -> None:
    """A certificate that fits sender and KID but whose key did not sign: badMessageCheck."""
    impostor = SignatureCredential(signing_key("p256-b"), leaf(), (intermediate(),))
    msg = PKIMessage.load(protect(unprotected(), impostor, random_bytes=os.urandom).dump())
    with pytest.raises(BadMessageCheck, match="does not verify"):
        check(msg, trusted())


def test_errors_carry_their_fail_info_bits() -> None:
    errors: list[CmpError] = []
    for msg, config in [
        (signed(leaf(not_after=NOW - dt.timedelta(days=1))), trusted()),
        (replace_header(signed(leaf()), senderKID=b"x"), trusted()),
    ]:
        with pytest.raises(CmpError) as info:
            check(msg, config)
        errors.append(info.value)
    assert [e.fail_info.name for e in errors] == ["signerNotTrusted", "badMessageCheck"]


def test_protection_certificate_comes_first_in_extra_certs() -> None:
    cert = leaf()
    msg = signed(cert)
    assert [c.dump() for c in msg["extraCerts"]] == [
        c.public_bytes(Encoding.DER) for c in (cert, intermediate())
    ]


def pss_signed_leaf() -> x509.Certificate:
    """A leaf whose own certificate signature is RSASSA-PSS (issued by the RSA root)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(dn("pss leaf"))
        .issuer_name(root().subject)
        .public_key(signing_key("rsa-b").public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(
                signing_key("rsa-b").public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
    )
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    return builder.sign(signing_key("rsa"), hashes.SHA256(), rsa_padding=pss)  # type: ignore[arg-type]


def test_pss_signed_certificate_validates() -> None:
    cert = pss_signed_leaf()
    assert check(signed(cert, "rsa-b", chain=()), trusted()) == cert
