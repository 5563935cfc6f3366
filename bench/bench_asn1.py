"""Benchmark the ASN.1 layer: parsing and encoding the messages of a signature-protected enrolment.

    python bench/bench_asn1.py            # from the repo root, in the project's venv

The messages are what a Lightweight CMP (RFC 9483) enrolment with ECDSA P-256 carries:
- ir: one CertReqMsg (subject, public key, signature POPO over the CertRequest), protected by the
  client's signature, extraCerts = client certificate and CA certificate;
- ip: one CertResponse (accepted, the issued certificate), caPubs = CA certificate, protected by
  the CA's signature, extraCerts = CA certificate;
- ip+2: the same ip with a second certificate in extraCerts (four certificates in all);
- certConf: one CertStatus (certHash, certReqId), protected by the client's signature, no
  extraCerts;
- pkiconf: the CA's signed confirmation (NULL body), no extraCerts.

Reported, in µs of process CPU time per operation (best of 5 `timeit` batches):
- parse: `PKIMessage.load(der)`, the strict decoder (one walk over the octets proves complete,
  canonical DER against the schema, then asn1crypto's lazy parse; see `engine/asn1/der.py`),
  with its memos warm, as in a running server, which meets the same OIDs, algorithm identifiers
  and status values in every message;
- parse cold: the same with every memo of the decoder emptied before each parse, as for a
  message whose every value is new to the process;
- lazy parse: asn1crypto's own `Asn1Value.load(der, strict=True)` on the same class, which only
  reads the outer header (everything else is parsed on first access): the context for the ratio;
- lazy + native: the lazy parse followed by `.native`, which parses every field (no DER check);
- dump force: `.dump(force=True)` of a message built from Python values (re-encodes every level);
- build + dump: constructing that message from its parts, then `.dump()`;
- dump parsed: `.dump()` of a parsed message (returns the cached encoding).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
import timeit
from collections.abc import Callable

import asn1crypto
import asn1crypto.core
from asn1crypto import core, keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sanscmp.engine.asn1 import CertReqMsg, CertRequest, PKIMessage, ProtectedPart
from sanscmp.engine.asn1 import der as strict_der

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _name(cn: str) -> cx509.Name:
    return cx509.Name(
        [
            cx509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "sanscmp bench"),
            cx509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePublicKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> cx509.Certificate:
    builder = (
        cx509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key)
        .serial_number(cx509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(cx509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(cx509.SubjectKeyIdentifier.from_public_key(key), critical=False)
    )
    if not ca:
        builder = builder.add_extension(
            cx509.SubjectAlternativeName([cx509.DNSName(f"{subject}.example")]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _directory(name: cx509.Name) -> x509.GeneralName:
    return x509.GeneralName(name="directory_name", value=x509.Name.load(name.public_bytes()))


def _header(sender: cx509.Name, recipient: cx509.Name, kid: bytes, **extra: object) -> dict:
    header = {
        "pvno": 2,
        "sender": _directory(sender),
        "recipient": _directory(recipient),
        "messageTime": core.GeneralizedTime(NOW),
        "protectionAlg": {"algorithm": "ecdsa-with-SHA256"},
        "senderKID": kid,
        "transactionID": bytes(range(16)),
        "senderNonce": bytes(range(16, 32)),
    }
    header.update(extra)
    return header


class Pki:
    """Keys and certificates of one enrolment: CA, client (old cert), requested key."""

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        self.new_key = ec.generate_private_key(ec.SECP256R1())
        ca_pub = self.ca_key.public_key()
        self.ca = _cert("Bench CA", ca_pub, "Bench CA", self.ca_key, ca=True)
        self.client = _cert("client", self.client_key.public_key(), "Bench CA", self.ca_key, False)
        self.issued = _cert("new-client", self.new_key.public_key(), "Bench CA", self.ca_key, False)
        self.new_spki = self.new_key.public_key().public_bytes(DER, SPKI)
        self.popo_signature = _sign(self.new_key, self._cert_request().dump())
        self.ir_protection = _sign(self.client_key, self._protected_part(self.ir_fields()))
        self.ip_protection = _sign(self.ca_key, self._protected_part(self.ip_fields()))
        self.cert_conf_protection = _sign(
            self.client_key, self._protected_part(self.cert_conf_fields())
        )
        self.pkiconf_protection = _sign(self.ca_key, self._protected_part(self.pkiconf_fields()))

    @staticmethod
    def _protected_part(fields: dict) -> bytes:
        return ProtectedPart({"header": fields["header"], "body": fields["body"]}).dump()

    def ski(self, cert: cx509.Certificate) -> bytes:
        return cert.extensions.get_extension_for_class(cx509.SubjectKeyIdentifier).value.digest

    def asn1_cert(self, cert: cx509.Certificate) -> x509.Certificate:
        return x509.Certificate.load(cert.public_bytes(DER))

    def _cert_request(self) -> CertRequest:
        return CertRequest(
            {
                "certReqId": 0,
                "certTemplate": {
                    "subject": x509.Name.build({"common_name": "new-client"}),
                    "publicKey": keys.PublicKeyInfo.load(self.new_spki),
                },
            }
        )

    def ir_fields(self) -> dict:
        """The ir without protection, built from Python values and DER blobs (no crypto)."""
        popo = {
            "algorithmIdentifier": {"algorithm": "ecdsa-with-SHA256"},
            "signature": self.popo_signature,
        }
        body = [CertReqMsg({"certReq": self._cert_request(), "popo": ("signature", popo)})]
        return {
            "header": _header(self.client.subject, self.ca.subject, self.ski(self.client)),
            "body": ("ir", body),
            "extraCerts": [self.asn1_cert(self.client), self.asn1_cert(self.ca)],
        }

    def ip_fields(self) -> dict:
        response = {
            "certReqId": 0,
            "status": {"status": "accepted"},
            "certifiedKeyPair": {"certOrEncCert": ("certificate", self.asn1_cert(self.issued))},
        }
        return {
            "header": _header(
                self.ca.subject,
                self.client.subject,
                self.ski(self.ca),
                recipNonce=bytes(range(16, 32)),
                senderNonce=bytes(range(32, 48)),
            ),
            "body": ("ip", {"caPubs": [self.asn1_cert(self.ca)], "response": [response]}),
            "extraCerts": [self.asn1_cert(self.ca)],
        }

    def cert_conf_fields(self) -> dict:
        status = {"certHash": bytes(32), "certReqId": 0}
        return {
            "header": _header(
                self.client.subject,
                self.ca.subject,
                self.ski(self.client),
                recipNonce=bytes(range(32, 48)),
                senderNonce=bytes(range(48, 64)),
            ),
            "body": ("certConf", [status]),
        }

    def pkiconf_fields(self) -> dict:
        return {
            "header": _header(
                self.ca.subject,
                self.client.subject,
                self.ski(self.ca),
                recipNonce=bytes(range(48, 64)),
                senderNonce=bytes(range(64, 80)),
            ),
            "body": ("pkiconf", core.Null()),
        }

    def ir(self) -> PKIMessage:
        return PKIMessage({**self.ir_fields(), "protection": self.ir_protection})

    def ip(self) -> PKIMessage:
        return PKIMessage({**self.ip_fields(), "protection": self.ip_protection})

    def ip_two_extra_certs(self) -> PKIMessage:
        extra = [self.asn1_cert(self.ca), self.asn1_cert(self.client)]
        return PKIMessage(
            {**self.ip_fields(), "protection": self.ip_protection, "extraCerts": extra}
        )

    def cert_conf(self) -> PKIMessage:
        return PKIMessage({**self.cert_conf_fields(), "protection": self.cert_conf_protection})

    def pkiconf(self) -> PKIMessage:
        return PKIMessage({**self.pkiconf_fields(), "protection": self.pkiconf_protection})


def best_us(func: Callable[[], object], min_time: float = 0.2, repeat: int = 5) -> float:
    """Best of `repeat` batches, each long enough (>= min_time s): µs of CPU time per call.

    CPU time of this process (not wall time): other jobs on the machine inflate it far less.
    """
    timer = timeit.Timer(func, timer=time.process_time)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= min_time:
            break
        number *= 2 if elapsed <= 0 else max(2, min(10, int(min_time / elapsed) + 1))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def lazy_load(der: bytes) -> PKIMessage:
    """asn1crypto's lazy parse of a PKIMessage, bypassing the strict `PKIMessage.load`."""
    return asn1crypto.core.Asn1Value.load.__func__(PKIMessage, der, strict=True)


def forget_memos() -> None:
    """Empty the strict decoder's memos: primitives proven canonical, OID names, callback specs."""
    for _params, plan in strict_der._PLANS.values():
        plan.memo.clear()
        if plan.proven is not None:
            plan.proven.clear()
    strict_der._OID_NAMES.clear()
    strict_der._CALLBACK_SPECS.clear()


def cold_load(der: bytes) -> PKIMessage:
    forget_memos()
    return PKIMessage.load(der)


def measure(name: str, build: Callable[[], PKIMessage]) -> dict[str, float | int | str]:
    der = build().dump()
    parsed = PKIMessage.load(der)
    assert parsed.dump() == der
    built = build()
    assert built.dump(force=True) == der
    strict = best_us(lambda: PKIMessage.load(der))
    lazy = best_us(lambda: lazy_load(der))
    return {
        "message": name,
        "bytes": len(der),
        "parse": strict,
        "parse cold": best_us(lambda: cold_load(der)) - best_us(forget_memos),
        "lazy parse": lazy,
        "strict/lazy": strict / lazy,
        "lazy + native": best_us(lambda: lazy_load(der).native),
        "dump force": best_us(lambda: built.dump(force=True)),
        "build + dump": best_us(lambda: build().dump()),
        "dump parsed": best_us(parsed.dump),
    }


def main() -> None:
    pki = Pki()
    signed = [(pki.ir(), pki.client), (pki.ip(), pki.ca), (pki.cert_conf(), pki.client)]
    for message, cert in [*signed, (pki.pkiconf(), pki.ca)]:  # the protection holds
        part = ProtectedPart({"header": message["header"], "body": message["body"]}).dump()
        cert.public_key().verify(message["protection"].native, part, ec.ECDSA(hashes.SHA256()))
    rows = [
        measure("ir", pki.ir),
        measure("ip", pki.ip),
        measure("ip+2", pki.ip_two_extra_certs),
        measure("certConf", pki.cert_conf),
        measure("pkiconf", pki.pkiconf),
    ]
    columns = [
        "message",
        "bytes",
        "parse",
        "parse cold",
        "lazy parse",
        "strict/lazy",
        "lazy + native",
        "dump force",
        "build + dump",
        "dump parsed",
    ]
    print(
        f"Python {platform.python_version()}, asn1crypto {asn1crypto.__version__}, "
        f"{os.cpu_count()} CPUs; µs of CPU time per operation, best of 5"
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if c == "message" else "---:" for c in columns) + "|")
    for row in rows:
        cells = []
        for column in columns:
            value = row[column]
            if column == "strict/lazy":
                cells.append(f"{value:.0f}x")
            elif isinstance(value, float):
                cells.append(f"{value:.1f}" if value < 100 else f"{value:.0f}")
            else:
                cells.append(str(value))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
