"""certHash of certConf (RFC 9810 section 5.3.18): the digest a client returns to confirm a cert.

CMPv2 hashes the certificate with the digest of its own signature algorithm (RFC 9481 2, RFC 9814
for ML-DSA: SHA-512; Ed25519: SHA-512; Ed448: SHAKE256 with 64 bytes); CMPv3 may name the hash in
CertStatus.hashAlg instead, which a pvno 2 message must not carry.
"""

from __future__ import annotations

import functools
import hmac

from .asn1 import AlgorithmIdentifier, CertStatus, load_der
from .digests import digest, owf_name
from .encode import contents_of, split
from .errors import BadCertId, BadRequest, DecodeError, UnsupportedVersion
from .signature import signature_hash_name

_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


def certificate_signature_algorithm(cert_der: bytes) -> AlgorithmIdentifier:
    """The signatureAlgorithm of a DER certificate as a CMP `AlgorithmIdentifier`."""
    return load_der(AlgorithmIdentifier, _signature_algorithm_der(cert_der))


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
    elif signature_alg is not None:
        name = signature_hash_name(signature_alg)
    else:
        name = _signature_hash_name(_signature_algorithm_der(cert_der))
    return digest(name, cert_der)


def _signature_algorithm_der(cert_der: bytes) -> bytes:
    """The DER signatureAlgorithm of Certificate ::= SEQUENCE { tbs, signatureAlgorithm, sig }.

    Sliced from the octets: no certificate parse, and keys asn1crypto cannot type do not matter.
    """
    try:
        (cert,) = split(cert_der)
        _tbs, algorithm, _signature = split(contents_of(cert))
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"malformed certificate: {exc}") from None
    if cert[0] != 0x30 or algorithm[0] != 0x30:
        raise DecodeError("malformed certificate: not a SEQUENCE")
    return algorithm


@functools.lru_cache(maxsize=64)
def _signature_hash_name(algorithm_der: bytes) -> str:
    """The digest of a DER signature algorithm (cached: a CA signs with one or a few)."""
    return signature_hash_name(load_der(AlgorithmIdentifier, algorithm_der))


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
