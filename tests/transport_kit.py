"""The transport test kit: what every CMP transport must do, as a mixin of pytest tests.

A transport's test module subclasses `TransportKit` and provides the fixture `endpoint` (an
`Endpoint`: how to send raw requests to a running server of that transport whose default profile
and the profile label "other" are served by the test PKI's `CmpServer`, with legacy path "/pkix/")
and `client` (a client engine that PBM-authenticates to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cmp_pki import cert_request, fail_info

from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.client import ClientEngine

CMP = "application/pkixcmp"


@dataclass(frozen=True)
class Answer:
    """What came back: status code, content type and body."""

    status: int
    content_type: str
    body: bytes


class Endpoint(Protocol):
    """Sends one raw request to the transport under test."""

    def send(
        self, path: str, body: bytes, *, content_type: str = CMP, method: str = "POST"
    ) -> Answer:
        """Send and return the answer."""
        ...

    def send_many(self, path: str, bodies: list[bytes]) -> list[Answer]:
        """Send several requests over one persistent connection, in order."""
        ...


class TransportKit:
    """The tests every transport passes (the class is a mixin: its name keeps pytest away)."""

    def test_enrolment_round_trip(self, endpoint: Endpoint, client: ClientEngine) -> None:
        txn = client.ir([cert_request("kit")])
        answer = endpoint.send("/.well-known/cmp", txn.request.dump())
        assert (answer.status, answer.content_type) == (200, CMP)
        follow_up = txn.receive(answer.body)
        assert follow_up is not None and follow_up["body"].name == "certConf"
        confirm = endpoint.send("/.well-known/cmp", follow_up.dump())
        assert confirm.status == 200
        assert txn.receive(confirm.body) is None
        assert txn.result.certificates[0].subject.rfc4514_string() == "CN=kit"

    def test_profile_label_and_legacy_path(self, endpoint: Endpoint, client: ClientEngine) -> None:
        for path in ("/.well-known/cmp/p/other", "/pkix/"):
            answer = endpoint.send(path, client.genm([{"infoType": "caCerts"}]).request.dump())
            assert answer.status == 200, path
            assert PKIMessage.load(answer.body)["body"].name == "genp"

    def test_unknown_label_is_404_with_text(self, endpoint: Endpoint, client: ClientEngine) -> None:
        answer = endpoint.send("/.well-known/cmp/p/nosuch", client.genm([]).request.dump())
        assert answer.status == 404
        assert b"nosuch" in answer.body and answer.content_type.startswith("text/plain")

    def test_unknown_path_is_404(self, endpoint: Endpoint, client: ClientEngine) -> None:
        assert endpoint.send("/elsewhere", client.genm([]).request.dump()).status == 404

    def test_other_methods_are_405(self, endpoint: Endpoint) -> None:
        assert endpoint.send("/.well-known/cmp", b"", method="GET").status == 405
        assert endpoint.send("/.well-known/cmp", b"", method="PUT").status == 405

    def test_other_content_type_is_415(self, endpoint: Endpoint, client: ClientEngine) -> None:
        body = client.genm([]).request.dump()
        assert endpoint.send("/.well-known/cmp", body, content_type="text/plain").status == 415

    def test_content_type_parameters_are_accepted(
        self, endpoint: Endpoint, client: ClientEngine
    ) -> None:
        body = client.genm([]).request.dump()
        answer = endpoint.send("/.well-known/cmp", body, content_type="Application/PKIXCMP; x=1")
        assert answer.status == 200

    def test_oversized_request_is_413(self, endpoint: Endpoint) -> None:
        assert endpoint.send("/.well-known/cmp", b"\x30" * (300 * 1024)).status == 413

    def test_garbage_gets_400_with_a_cmp_error(self, endpoint: Endpoint) -> None:
        answer = endpoint.send("/.well-known/cmp", b"\x30\x03\x02\x01\x02 not cmp at all")
        assert (answer.status, answer.content_type) == (400, CMP)
        assert fail_info(PKIMessage.load(answer.body)) == {"badDataFormat"}

    def test_server_keeps_serving_after_bad_input(
        self, endpoint: Endpoint, client: ClientEngine
    ) -> None:
        for junk in (b"", b"\x00", b"\x30\x80\x00\x00", b"\xff" * 1000):
            assert endpoint.send("/.well-known/cmp", junk).status == 400
        assert endpoint.send("/.well-known/cmp", client.genm([]).request.dump()).status == 200

    def test_persistent_connection_serves_a_whole_transaction(
        self, endpoint: Endpoint, client: ClientEngine
    ) -> None:
        bodies = [client.genm([]).request.dump() for _ in range(3)]
        answers = endpoint.send_many("/.well-known/cmp", bodies)
        assert [a.status for a in answers] == [200, 200, 200]
