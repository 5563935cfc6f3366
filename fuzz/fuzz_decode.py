"""Fuzz the strict decoder: arbitrary bytes into `PKIMessage.load`.

    python fuzz/fuzz_decode.py -max_total_time=45 -rss_limit_mb=2048     # from the repo root
    python fuzz/fuzz_decode.py crash-<sha1>                              # replay one input

The contract under test (README "Decoding messages", engine/asn1/der.py): `PKIMessage.load(data)`
raises `DecodeError` and nothing else, or returns a message whose `dump()` is exactly `data`.
Any other exception, or an accepted input that re-encodes differently (AssertionError), is a
finding. With FUZZ_DECODE_NATIVE=1 an accepted message must also convert `.native` without an
exception ("every part parses now, not later"), a stricter check that soon finds a known gap:
values of unregistered types are kept opaque, checked for DER framing only (fuzz/README.md).

Seeds: every DER message of tests/fixtures/openssl (real `openssl cmp` traffic, if present) plus
a few hand-built messages below, copied to fuzz/corpus-work/decode/ (gitignored), the corpus
directory used when none is given on the command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "openssl"
CORPUS = REPO / "fuzz" / "corpus-work" / "decode"
CHECK_NATIVE = os.environ.get("FUZZ_DECODE_NATIVE") == "1"

with atheris.instrument_imports(include=["sanscmp", "asn1crypto"]):
    from asn1crypto import core, x509

    from sanscmp.engine.asn1 import DecodeError, PKIMessage


def TestOneInput(data: bytes) -> None:
    try:
        msg = PKIMessage.load(data)
    except DecodeError:
        return
    if msg.dump() != data:
        raise AssertionError(f"accepted input re-encodes differently: {data.hex()}")
    if CHECK_NATIVE:
        msg.native  # noqa: B018


def _header(**extra: object) -> dict[str, object]:
    header: dict[str, object] = {
        "pvno": 2,
        "sender": x509.GeneralName(
            name="directory_name", value=x509.Name.build({"common_name": "fuzz client"})
        ),
        "recipient": x509.GeneralName(name="dns_name", value="ca.example"),
        "transactionID": bytes(range(16)),
        "senderNonce": bytes(range(16, 32)),
    }
    header.update(extra)
    return header


def inline_seeds() -> dict[str, bytes]:
    """A few messages that reach structures the OpenSSL fixtures may not carry."""
    pbm = {
        "algorithm": "id-PasswordBasedMac",
        "parameters": {
            "salt": b"0123456789abcdef",
            "owf": {"algorithm": "id-sha256"},
            "iterationCount": 500,
            "mac": {"algorithm": "id-hmacWithSHA256"},
        },
    }
    pkiconf = PKIMessage({"header": _header(), "body": ("pkiconf", core.Null())})
    template = {
        "subject": x509.Name.build({"common_name": "fuzz", "country_name": "DE"}),
        "validity": {"notAfter": x509.Time(name="utc_time", value=core.UTCTime("301231235959Z"))},
        "extensions": [
            {"extn_id": "key_usage", "critical": True, "extn_value": {"digital_signature"}},
        ],
    }
    ir = PKIMessage(
        {
            "header": _header(
                protectionAlg=pbm,
                senderKID=b"fuzz",
                generalInfo=[
                    {"infoType": "implicitConfirm", "infoValue": core.Null()},
                    {"infoType": "certProfile", "infoValue": ["tls-client"]},
                    {"infoType": "1.3.6.1.4.1.99999.1", "infoValue": core.Integer(7)},
                ],
            ),
            "body": (
                "ir",
                [
                    {
                        "certReq": {
                            "certReqId": 0,
                            "certTemplate": template,
                            "controls": [{"type": "regToken", "value": core.UTF8String("tok")}],
                        },
                        "popo": ("raVerified", core.Null()),
                    },
                    {
                        "certReq": {"certReqId": 1, "certTemplate": {"serialNumber": 2}},
                        "popo": (
                            "signature",
                            {
                                "algorithmIdentifier": {"algorithm": "ecdsa-with-SHA256"},
                                "signature": b"\x30\x06\x02\x01\x01\x02\x01\x01",
                            },
                        ),
                    },
                ],
            ),
            "protection": bytes(32),
        }
    )
    error = PKIMessage(
        {
            "header": _header(pvno=3, freeText=["fuzz"]),
            "body": (
                "error",
                {
                    "pKIStatusInfo": {
                        "status": "rejection",
                        "statusString": ["bad"],
                        "failInfo": {"badAlg", "badPOP", "duplicateCertReq"},
                    },
                    "errorCode": 42,
                    "errorDetails": ["details"],
                },
            ),
        }
    )
    cert_conf = PKIMessage(
        {
            "header": _header(),
            "body": (
                "certConf",
                [
                    {
                        "certHash": bytes(32),
                        "certReqId": 0,
                        "statusInfo": {"status": "accepted"},
                        "hashAlg": {"algorithm": "id-sha256"},
                    }
                ],
            ),
        }
    )
    nested = PKIMessage(
        {"header": _header(), "body": ("nested", [PKIMessage.load(pkiconf.dump())])}
    )
    poll_rep = PKIMessage(
        {
            "header": _header(),
            "body": ("pollRep", [{"certReqId": 0, "checkAfter": 10, "reason": ["busy"]}]),
        }
    )
    seeds = {
        "pkiconf": pkiconf,
        "ir": ir,
        "error": error,
        "certConf": cert_conf,
        "nested": nested,
        "pollRep": poll_rep,
    }
    return {name: msg.dump() for name, msg in seeds.items()}


def seed_corpus() -> None:
    """Copy the fixture messages and the inline seeds into the work corpus."""
    CORPUS.mkdir(parents=True, exist_ok=True)
    seeds = {f"fixture-{p.stem}": p.read_bytes() for p in sorted(FIXTURES.glob("*.der"))}
    seeds.update({f"inline-{name}": der for name, der in inline_seeds().items()})
    for name, der in seeds.items():
        TestOneInput(der)  # every seed must itself pass the check
        target = CORPUS / name
        if not target.exists():
            target.write_bytes(der)


def main() -> None:
    if not any(not arg.startswith("-") for arg in sys.argv[1:]):  # no corpus dir or input given
        seed_corpus()
        sys.argv.append(str(CORPUS))
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
