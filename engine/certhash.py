"""certHash of certConf (RFC 9810 section 5.3.18): the digest a client returns to confirm a cert.

CMPv2 hashes the certificate with the digest of its own signature algorithm (RFC 9481 2, RFC 9814
for ML-DSA: SHA-512; Ed25519: SHA-512; Ed448: SHAKE256 with 64 bytes); CMPv3 may name the hash in
CertStatus.hashAlg instead, which a pvno 2 message must not carry.
"""

from __future__ import annotations

import hmac

from asn1crypto.x509 import Certificate

from .asn1 import AlgorithmIdentifier, CertStatus, load_der
from .digests import digest, owf_name
from .errors import BadCertId, BadRequest, DecodeError, UnsupportedVersion
from .signature import signature_hash_name

_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


def certificate_signature_algorithm(cert_der: bytes) -> AlgorithmIdentifier:
    """The signatureAlgorithm of a DER certificate as a CMP `AlgorithmIdentifier`."""
    try:
        # Only the outer SEQUENCE is parsed: keys asn1crypto cannot type (ML-DSA) do not matter.
        alg_der = Certificate.load(cert_der)["signature_algorithm"].dump()
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed certificate: {exc}") from None
    return load_der(AlgorithmIdentifier, alg_der)


def cert_hash(
    cert_der: bytes,
    signature_alg: AlgorithmIdentifier | None = None,
    hash_alg: AlgorithmIdentifier | None = None,
) -> bytes:
    """The certHash of `cert_der`: with `hash_alg` if given (CMPv3), else the signature's digest.

    `signature_alg` defaults to the certificate's own signatureAlgorithm. `BadAlg` if the hash is
    not a supported one-way function or the signature algorithm names no digest.
    """
    if hash_alg is not None:
        name = owf_name(hash_alg)
    else:
        if signature_alg is None:
            signature_alg = certificate_signature_algorithm(cert_der)
        name = signature_hash_name(signature_alg)
    return digest(name, cert_der)


def check_cert_hash(cert_der: bytes, cert_status: CertStatus, pvno: int) -> None:
    """Check a certConf CertStatus against the certificate issued; raise on any mismatch.

    `UnsupportedVersion` for a pvno other than 2 or 3; `BadRequest` for hashAlg under pvno 2 (a
    cmp2021 field in a cmp2000 message); `BadAlg` for an unsupported hashAlg; `BadCertId` if the
    hash differs (compared in constant time).
    """
    if pvno not in (2, 3):
        raise UnsupportedVersion(f"certConf with pvno {pvno}; only 2 and 3 are supported")
    hash_alg = cert_status["hashAlg"]
    present = hash_alg.native is not None
    if present and pvno != 3:
        raise BadRequest("certConf hashAlg requires pvno 3 (cmp2021), message has pvno 2")
    expected = cert_hash(cert_der, hash_alg=hash_alg if present else None)
    received = cert_status["certHash"].native
    if not hmac.compare_digest(expected, received):
        req_id = cert_status["certReqId"].native
        raise BadCertId(f"certHash for certReqId {req_id} does not match the issued certificate")
