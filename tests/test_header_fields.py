"""`header_fields`: the one-pass DER reading of a PKIHeader agrees with asn1crypto's reading.

The fast reader is what the engine uses for every request; asn1crypto's `.native` is the oracle.
Any header (random ones from `strategies.pki_headers`, messageTime with fractions, unnamed
infoTypes) must read the same both ways; a header not in DER falls back to asn1crypto; a header
changed after it was read is read again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asn1crypto import core
from hypothesis import given, settings
from strategies import pki_headers

from sanscmp.engine.asn1 import PKIHeader, has_general_info, header_fields, null_dn
from sanscmp.engine.asn1.header_fields import _read_der, _read_parsed


@settings(max_examples=300, deadline=None)
@given(pki_headers())
def test_der_reading_matches_asn1crypto(header: PKIHeader) -> None:
    der = header.dump()
    assert _read_der(PKIHeader.load(der).contents) == _read_parsed(PKIHeader.load(der))


@pytest.mark.parametrize(
    "encoded",
    [b"20261129103000Z", b"20261129103000.5Z", b"20261129103000.000001Z", b"19991231235959.25Z"],
)
def test_message_time_forms(encoded: bytes) -> None:
    header = _header(
        messageTime=core.GeneralizedTime.load(b"\x18" + bytes([len(encoded)]) + encoded)
    )
    der = header.dump()
    fields = _read_der(PKIHeader.load(der).contents)
    assert fields.message_time == PKIHeader.load(der)["messageTime"].native
    assert fields.message_time is not None and fields.message_time.tzinfo is not None


def test_unnamed_info_type_reads_dotted() -> None:
    header = _header(
        generalInfo=[{"infoType": "1.2.3.4.5.300000"}, {"infoType": "implicitConfirm"}]
    )
    fields = header_fields(PKIHeader.load(header.dump()))
    assert fields.general_info == ("1.2.3.4.5.300000", "implicitConfirm")
    assert has_general_info(header, "implicitConfirm")
    assert not has_general_info(header, "confirmWaitTime")


def test_header_not_in_der_falls_back() -> None:
    """A time with an offset (BER allows it, DER does not; a salvaged header may have it) is not
    for the fast reader: asn1crypto reads the header, with the same meaning."""
    local = b"20261129113000+0100"
    fields = _header(messageTime=datetime(2026, 11, 29, 10, 30, tzinfo=UTC), senderKID=b"kid")
    good = fields.contents
    start = good.index(b"\xa0")
    length = good[start + 1] + 2
    bad = good[:start] + b"\xa0" + bytes([len(local) + 2, 0x18, len(local)]) + local
    bad += good[start + length :]
    with pytest.raises(ValueError):
        _read_der(bad)
    loaded = PKIHeader.load(b"\x30" + bytes([len(bad)]) + bad, strict=False)
    read = header_fields(loaded)
    assert read.message_time == datetime(2026, 11, 29, 10, 30, tzinfo=UTC)
    assert read.sender_kid == b"kid"


def test_value_with_trailing_bytes_inside_its_tag_reads_as_asn1crypto_does() -> None:
    """A salvaged header may carry bytes after the value inside an explicit tag (fuzz_server
    found one): asn1crypto reads the value alone, and so must the answer's recipNonce."""
    nonce = b"n" * 16
    good = _header(senderNonce=nonce).contents
    start = good.index(b"\xa5")
    bad = good[:start] + b"\xa5" + bytes([good[start + 1] + 3]) + good[start + 2 :] + b"\x04\x01x"
    loaded = PKIHeader.load(b"\x30" + bytes([len(bad)]) + bad, strict=False)
    assert loaded["senderNonce"].native == nonce
    with pytest.raises(ValueError):
        _read_der(bad)
    assert header_fields(loaded).sender_nonce == nonce


def test_header_of_128_bytes_is_read_from_its_contents() -> None:
    """A length octet of 0x80 makes asn1crypto's `dump()` re-encode; the contents are read."""
    header = _header(senderKID=b"k" * 100)
    header = _header(senderKID=b"k" * (100 + 128 - len(header.contents)))
    der = header.dump()
    assert der[1:3] == b"\x81\x80"
    loaded = PKIHeader.load(der)
    assert header_fields(loaded).sender_kid == header["senderKID"].native


def test_changed_header_is_read_again() -> None:
    header = _header(senderKID=b"old")
    assert header_fields(header).sender_kid == b"old"
    header["senderKID"] = b"new"
    assert header_fields(header).sender_kid == b"new"


def test_time_is_utc() -> None:
    header = _header(messageTime=datetime(2026, 11, 29, 10, 30, tzinfo=UTC))
    assert header_fields(header).message_time == datetime(2026, 11, 29, 10, 30, tzinfo=UTC)


def _header(**fields: object) -> PKIHeader:
    return PKIHeader({"pvno": 2, "sender": null_dn(), "recipient": null_dn(), **fields})
