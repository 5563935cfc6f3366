"""Errors and protection of answers: broken input, protected answers, misuse of the event API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cmp_pki import (
    SECRETS,
    Crafter,
    FixedClock,
    IssuingCA,
    SecretTable,
    body,
    cert_request,
    csr_der,
    exchange,
    fail_info,
    general_name,
    is_protected,
    make_client,
    make_server,
    name,
    pki,
    statuses,
    tid_of,
)
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.client import RevocationSpec
from sanscmp.engine.encode import contents_of, explicit, octet_string, sequence, split
from sanscmp.engine.errors import BadCertTemplate, FailInfo
from sanscmp.engine.events import (
    Acknowledge,
    CertificatesConfirmed,
    CertificatesRequested,
    Defer,
    GeneralResponse,
    Issue,
    PollReceived,
    Reject,
)
from sanscmp.engine.handlers import CmpServer
from sanscmp.engine.protection import MacCredential, verify_protection
from sanscmp.engine.server import Answered, ServerEngine, ServerOptions

CLOCK = FixedClock()


def live(engine: ServerEngine) -> dict[bytes, tuple[str, int]]:
    return {t.transaction_id: (t.state, t.version) for t in engine.config.transactions}  # type: ignore[attr-defined]


def assert_error_for(answer: PKIMessage, request: PKIMessage, bit: str) -> None:
    """`answer` is a well-formed error about `bit` answering `request`'s header."""
    answer = PKIMessage.load(answer.dump())
    assert answer["body"].name == "error"
    assert fail_info(answer) == {bit}
    header, asked = answer["header"], request["header"]
    assert header["transactionID"].native == asked["transactionID"].native
    assert header["recipNonce"].native == asked["senderNonce"].native
    assert header["pvno"].native == asked["pvno"].native
    assert len(header["senderNonce"].native) >= 16


# ---- unparsable input ---------------------------------------------------------------------------


def _break_body(message: PKIMessage) -> bytes:
    """The DER of `message` with its body's tag replaced by an undefined PKIBody choice."""
    der = bytearray(message.dump())
    offset = der.index(message["body"].dump())
    der[offset] = 0xBF  # [31..] high tag number form: no PKIBody alternative
    return bytes(der)


@pytest.mark.parametrize("pvno", [2, 3])
@pytest.mark.parametrize("kind", ["mac", "ec", "none"])
def test_error_for_an_unparsable_body_carries_the_request_s_header(kind: str, pvno: int) -> None:
    server = make_server(clock=CLOCK)
    request = make_client(kind, clock=CLOCK, pvno=pvno).ir([cert_request()]).request
    answer = server.process_request(_break_body(request))
    assert_error_for(answer, request, "badDataFormat")
    assert server.transaction_closed


@pytest.mark.parametrize("keep", ["all but 1", "all but 10", "header only"])
def test_error_for_a_truncated_message_carries_the_request_s_header(keep: str) -> None:
    server = make_server(clock=CLOCK)
    request = make_client(clock=CLOCK, pvno=3).genm([]).request
    der = request.dump()
    end = {"all but 1": len(der) - 1, "all but 10": len(der) - 10}.get(
        keep, der.index(request["body"].dump())
    )
    answer = server.process_request(der[:end])
    assert_error_for(answer, request, "badDataFormat")


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00", b"\x30", b"\x30\x00", b"hello", b"\x30\x03\x02\x01\x02"]
)
@pytest.mark.parametrize("unprotected", [False, True])
def test_garbage_still_gets_a_well_formed_error(garbage: bytes, unprotected: bool) -> None:
    server = make_server(clock=CLOCK, options=ServerOptions(send_unprotected_errors=unprotected))
    answer = PKIMessage.load(server.process_request(garbage).dump())
    assert answer["body"].name == "error"
    assert fail_info(answer) == {"badDataFormat"}
    header = answer["header"]
    assert header["pvno"].native == 2
    assert header["transactionID"].native is None and header["recipNonce"].native is None
    assert header["sender"].dump() == general_name(pki().server.name).dump()
    assert is_protected(answer) is not unprotected
    if not unprotected:
        verify_protection(answer, now=CLOCK.now(), trust=pki().trust)


REQUEST = make_client(clock=CLOCK, seed=b"fuzz").ir([cert_request(), cert_request()]).request
REQUEST_DER = REQUEST.dump()
HEADER_END = REQUEST_DER.index(REQUEST["body"].dump())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.data(),
    st.sampled_from(["flip", "insert", "delete", "truncate"]),
    st.booleans(),
)
def test_mutated_requests_get_a_well_formed_answer(
    data: st.DataObject, how: str, after_header: bool
) -> None:
    """Whatever the bytes, the answer is a CMP message; an error never blames the engine, and a
    request whose header is intact is answered with its transactionID, nonce and pvno."""
    der = bytearray(REQUEST_DER)
    low = HEADER_END if after_header else 0
    at = data.draw(st.integers(low, len(der) - 1))
    if how == "flip":
        der[at] ^= data.draw(st.integers(1, 255))
    elif how == "insert":
        der[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    elif how == "delete":
        del der[at : at + data.draw(st.integers(1, 8))]
    else:
        del der[at:]
    server = make_server(clock=CLOCK, seed=bytes(der[-8:]))
    answer = PKIMessage.load(server.process_request(bytes(der)).dump())
    if answer["body"].name == "error":
        assert fail_info(answer) and "systemFailure" not in fail_info(answer)
    if (after_header and how != "truncate") or (how == "truncate" and at > HEADER_END):
        assert answer["header"]["transactionID"].native == REQUEST["header"]["transactionID"].native
        assert answer["header"]["recipNonce"].native == REQUEST["header"]["senderNonce"].native


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_get_an_error(garbage: bytes) -> None:
    answer = PKIMessage.load(make_server(clock=CLOCK).process_request(garbage).dump())
    assert answer["body"].name == "error"
    assert fail_info(answer) == {"badDataFormat"}


# ---- protection of answers -----------------------------------------------------------------------


def test_mac_is_answered_with_mac_and_the_same_credential() -> None:
    server = make_server(clock=CLOCK)
    request = make_client(clock=CLOCK, reference=b"client-2").genm([]).request
    answer = exchange(server, request)
    assert answer["body"].name == "genp"
    assert answer["header"]["protectionAlg"].dump() == request["header"]["protectionAlg"].dump()
    assert answer["header"]["senderKID"].native == b"client-2"
    assert answer["header"]["recipKID"].native == b"client-2"
    verified = verify_protection(
        answer, now=CLOCK.now(), mac_secrets=SecretTable({b"client-2": SECRETS[b"client-2"]})
    )
    assert verified.kind == "mac"
    with pytest.raises(Exception, match="does not verify"):
        verify_protection(
            answer, now=CLOCK.now(), mac_secrets=SecretTable({b"client-2": SECRETS[b"client-1"]})
        )


@pytest.mark.parametrize("kind", ["ec", "rsa", "none"])
def test_signature_or_nothing_is_answered_with_the_server_s_signature(kind: str) -> None:
    server = make_server(clock=CLOCK, options=ServerOptions(accept_unprotected=True))
    answer = exchange(server, make_client(kind, clock=CLOCK).genm([]).request)
    assert answer["body"].name == "genp"
    verified = verify_protection(answer, now=CLOCK.now(), trust=pki().trust)
    assert verified.certificate == pki().server.certificate
    assert answer["extraCerts"][0].dump() == pki().server.certificate.public_bytes(Encoding.DER)


def test_error_about_the_header_of_a_mac_request_is_mac_protected() -> None:
    server = make_server(clock=CLOCK)
    request = Crafter(CLOCK).message(
        body("genm", []), message_time=CLOCK.now() - timedelta(hours=1)
    )
    answer = exchange(server, request)
    assert fail_info(answer) == {"badTime"}
    assert answer["header"]["protectionAlg"].dump() == request["header"]["protectionAlg"].dump()
    verify_protection(answer, now=CLOCK.now(), mac_secrets=SecretTable(SECRETS))


def test_error_for_an_unknown_client_is_signed_by_the_server() -> None:
    server = make_server(clock=CLOCK)
    request = make_client(clock=CLOCK, reference=b"who?", secret=b"x").genm([]).request
    answer = exchange(server, request)
    assert fail_info(answer) == {"badMessageCheck"}
    assert verify_protection(answer, now=CLOCK.now(), trust=pki().trust).kind == "signature"


def test_error_for_an_unknown_client_without_a_server_key() -> None:
    request = make_client(clock=CLOCK, reference=b"who?", secret=b"x").genm([]).request
    answer = exchange(make_server(clock=CLOCK, signs=False), request)
    assert fail_info(answer) == {"badMessageCheck"} and not is_protected(answer)
    fallback = MacCredential(b"server", b"server secret")
    answer = exchange(make_server(clock=CLOCK, signs=False, fallback_mac=fallback), request)
    assert answer["header"]["senderKID"].native == b"server"
    verify_protection(
        answer, now=CLOCK.now(), mac_secrets=SecretTable({b"server": b"server secret"})
    )


def test_send_unprotected_errors_covers_every_negative_answer() -> None:
    clock = FixedClock()
    ca = IssuingCA(reject_ids=frozenset({0, 1}))
    server = make_server(ca, clock=clock, options=ServerOptions(send_unprotected_errors=True))
    client = make_client(clock=clock)
    all_rejected = exchange(server, client.ir([cert_request(), cert_request()]).request)
    assert set(statuses(all_rejected).values()) == {"rejection"} and not is_protected(all_rejected)
    ca.reject_ids = frozenset({1})
    partly = exchange(server, client.ir([cert_request(), cert_request()]).request)
    assert is_protected(partly)
    rp = exchange(server, client.rr([RevocationSpec(pki().ca_name, 4242)]).request)
    assert rp["body"].name == "rp" and not is_protected(rp)
    deferred = make_server(
        IssuingCA(defer_kinds=frozenset({"genm"})),
        clock=clock,
        options=ServerOptions(send_unprotected_errors=True),
    )
    waiting = exchange(deferred, client.genm([]).request)
    assert waiting["body"].name == "error" and is_protected(waiting)  # waiting is not negative


# ---- the event API: answered once, and never for a transaction that moved on ---------------------


def _engine(**options: object) -> ServerEngine:
    return make_server(clock=CLOCK, options=ServerOptions(**options)).engine  # type: ignore[arg-type]


def _issue(inbound: CertificatesRequested) -> list[Issue]:
    return [
        Issue(pki().issue(load_der_public_key(r.popo.public_key), name("e")))  # type: ignore[arg-type]
        for r in inbound.requests
    ]


def test_event_api_without_callbacks() -> None:
    engine = _engine()
    transaction = make_client(clock=CLOCK, seed=b"events").ir([cert_request()])
    inbound = engine.receive(transaction.request.dump())
    assert isinstance(inbound, CertificatesRequested)
    assert inbound.body_type == "ir" and [r.cert_req_id for r in inbound.requests] == [0]
    assert inbound.client.protection == "mac" and inbound.client.sender_kid == b"client-1"
    cert_conf = transaction.receive(engine.respond(inbound, _issue(inbound)))
    confirmed = engine.receive(cert_conf)
    assert isinstance(confirmed, CertificatesConfirmed)
    assert transaction.receive(engine.respond(confirmed, Acknowledge())) is None
    assert engine.transaction_closed and live(engine) == {}


def test_responding_twice_changes_nothing() -> None:
    engine = _engine()
    transaction = make_client(clock=CLOCK, seed=b"twice").ir([cert_request()])
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    first = engine.respond(inbound, _issue(inbound))
    assert first["body"].name == "ip"
    before = live(engine)
    second = engine.respond(inbound, _issue(inbound))
    assert fail_info(second) == {"systemFailure"}
    assert live(engine) == before  # the transaction is still waiting for its certConf
    assert not engine.transaction_closed
    assert engine.refuse(inbound, BadCertTemplate("late")) is not None
    assert live(engine) == before  # a stale refusal ends nothing either
    cert_conf = transaction.receive(first)
    confirmed = engine.receive(cert_conf)
    assert isinstance(confirmed, CertificatesConfirmed)
    assert engine.respond(confirmed, Acknowledge())["body"].name == "pkiconf"


def test_a_new_transaction_answered_twice_is_not_processed_twice() -> None:
    engine = _engine()
    request = make_client(clock=CLOCK, seed=b"gen").genm([]).request
    inbound = engine.receive(request)
    assert engine.respond(inbound, GeneralResponse())["body"].name == "genp"  # type: ignore[arg-type]
    assert fail_info(engine.respond(inbound, GeneralResponse())) == {"systemFailure"}  # type: ignore[arg-type]


def test_no_resurrection_after_expiry() -> None:
    clock = FixedClock()
    engine = make_server(clock=clock).engine
    transaction = make_client(clock=clock, seed=b"exp").ir([cert_request()])
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    cert_conf = transaction.receive(engine.respond(inbound, _issue(inbound)))
    confirmed = engine.receive(cert_conf)
    assert isinstance(confirmed, CertificatesConfirmed)
    clock.advance(3600)
    assert len(engine.expire()) == 1
    late = engine.respond(confirmed, Acknowledge())
    assert fail_info(late) == {"badRequest"}
    assert live(engine) == {} and engine.transaction_closed


def test_two_first_requests_with_one_transaction_id() -> None:
    engine = _engine()
    client = make_client(clock=CLOCK, seed=b"same")
    first = client.ir([cert_request()])
    crafted = Crafter(CLOCK).message(
        make_client(seed=b"other").ir([cert_request()]).request["body"],
        tid=first.transaction_id,
    )
    a, b = engine.receive(first.request), engine.receive(crafted)
    assert isinstance(a, CertificatesRequested) and isinstance(b, CertificatesRequested)
    assert engine.respond(a, _issue(a))["body"].name == "ip"
    before = live(engine)
    answer = engine.respond(b, _issue(b))
    assert fail_info(answer) == {"transactionIdInUse"}
    assert live(engine) == before


def test_two_polls_answered_out_of_order() -> None:
    clock = FixedClock()
    engine = make_server(clock=clock).engine
    transaction = make_client(clock=clock, seed=b"polls").ir([cert_request(), cert_request()])
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    waiting = engine.respond(inbound, Defer(2))
    assert statuses(waiting) == {0: "waiting", 1: "waiting"}
    poll = transaction.receive(waiting)
    crafter = Crafter(clock)
    first = engine.receive(poll)
    second = engine.receive(crafter.follow_up(waiting, body("pollReq", [{"certReqId": 1}])))
    assert isinstance(first, PollReceived) and isinstance(second, PollReceived)
    assert isinstance(first.original, CertificatesRequested)
    ip = engine.respond(first, _issue(first.original))
    # the answer to a poll for an ir is an ip for the original's certReqIds
    assert ip["body"].name == "ip" and statuses(ip) == {0: "accepted", 1: "accepted"}
    assert ip["header"]["recipNonce"].native == poll["header"]["senderNonce"].native
    before = live(engine)
    stale = engine.respond(second, Defer(2))
    assert fail_info(stale) == {"badRequest"}
    assert live(engine) == before and next(iter(before.values()))[0] == "waiting_certConf"


def test_poll_answered_with_defer_is_a_poll_rep_for_the_polled_ids() -> None:
    engine = _engine()
    transaction = make_client(clock=CLOCK, seed=b"p10").p10cr(
        csr_der(ec.generate_private_key(ec.SECP256R1()), name("p"))
    )
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    poll = transaction.receive(engine.respond(inbound, Defer(9, "busy")))
    polled = engine.receive(poll)
    assert isinstance(polled, PollReceived)
    rep = engine.respond(polled, Defer(4, "still busy"))
    assert rep["body"].name == "pollRep"
    (entry,) = rep["body"].chosen
    assert (entry["certReqId"].native, entry["checkAfter"].native) == (-1, 4)
    assert entry["reason"].native == ["still busy"]
    polled = engine.receive(transaction.receive(rep))
    assert isinstance(polled, PollReceived) and isinstance(polled.original, CertificatesRequested)
    cp = engine.respond(polled, _issue(polled.original))
    assert cp["body"].name == "cp" and statuses(cp) == {-1: "accepted"}


@pytest.mark.parametrize(
    "decision",
    [Acknowledge(), GeneralResponse(), [], [Reject(FailInfo.badRequest)] * 2],
    ids=["acknowledge", "genp", "too few", "too many"],
)
def test_a_decision_that_does_not_fit_is_the_server_s_fault(decision: object) -> None:
    engine = _engine()
    inbound = engine.receive(
        make_client(clock=CLOCK, seed=repr(decision)).ir([cert_request()]).request
    )
    answer = engine.respond(inbound, decision)  # type: ignore[arg-type]
    assert fail_info(answer) == {"systemFailure"}
    assert engine.transaction_closed and live(engine) == {}


def test_answered_reports_whether_a_live_transaction_goes_on() -> None:
    engine = _engine()
    transaction = make_client(clock=CLOCK, seed=b"ans").ir([cert_request()])
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    engine.respond(inbound, _issue(inbound))
    replay = engine.receive(transaction.request)
    assert isinstance(replay, Answered)
    assert not replay.closed and replay.transaction_id == transaction.transaction_id
    assert engine.get0_cmp_ctx if hasattr(engine, "get0_cmp_ctx") else True
    assert engine.context.state == "waiting_certConf" and not engine.transaction_closed
    garbage = engine.receive(b"\x30\x00")
    assert isinstance(garbage, Answered) and garbage.closed and garbage.transaction_id is None


def test_failing_callbacks_and_hooks_in_the_facade() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server: CmpServer = make_server(ca, clock=clock)
    server.handlers.process_genm = lambda s, r, items: 1 / 0  # type: ignore[assignment, misc, return-value]
    answer = exchange(server, make_client(clock=clock).genm([]).request)
    assert fail_info(answer) == {"systemFailure"}
    assert server.transaction_closed and ca.cleaned == [tid_of(answer)]


def test_unprotected_error_messages_are_accepted_only_with_the_option() -> None:
    request = make_client("none", clock=CLOCK).error(FailInfo.badRequest, "gives up").request
    answer = exchange(make_server(clock=CLOCK), request)
    assert fail_info(answer) == {"badMessageCheck"}
    lenient = ServerOptions(accept_unprotected_errors=True)
    answer = exchange(make_server(clock=CLOCK, options=lenient), request)
    assert answer["body"].name == "pkiconf"
    genm = make_client("none", clock=CLOCK).genm([]).request
    assert fail_info(exchange(make_server(clock=CLOCK, options=lenient), genm)) == {
        "badMessageCheck"
    }


def test_a_broken_sender_name_is_not_copied_into_the_error_answer() -> None:
    """Found by fuzz/fuzz_server.py: the header of a broken request is salvaged for the answer,
    but its sender (here an OID ending inside an arc) must not become the answer's recipient."""
    request = make_client("ec", clock=CLOCK).genm([]).request.dump()
    assert PKIMessage.load(request)["header"]["sender"].dump() != bytes.fromhex("a4023000")
    at = request.index(bytes.fromhex("0603550403"))  # the CN attribute of the sender's name
    broken = request[:at] + bytes.fromhex("06035504ff") + request[at + 5 :]
    answer = PKIMessage.load(make_server(clock=CLOCK).process_request(broken).dump())
    assert fail_info(answer) == {"badDataFormat"}
    assert answer["header"]["recipient"].dump() == bytes.fromhex("a4023000")  # NULL-DN
    assert (
        answer["header"]["transactionID"].native
        == PKIMessage.load(request)["header"]["transactionID"].native
    )


def test_salvaged_nonce_with_trailing_bytes_inside_its_tag_is_echoed_as_read() -> None:
    """Found by fuzz/fuzz_server.py: a broken request's senderNonce tag held the nonce and more
    bytes; the answer's recipNonce must be the nonce as the salvaged header reads it."""
    request = make_client("ec", clock=CLOCK).genm([]).request.dump()
    header_der, *rest = split(contents_of(request))
    nonce = PKIMessage.load(request)["header"]["senderNonce"].native
    fields = [
        explicit(5, octet_string(nonce) + octet_string(b"x")) if f[0] == 0xA5 else f
        for f in split(contents_of(header_der))
    ]
    broken = sequence(sequence(*fields), *rest)  # [5] holds the nonce and one more value
    answer = PKIMessage.load(make_server(clock=CLOCK).process_request(broken).dump())
    assert fail_info(answer) == {"badDataFormat"}
    assert answer["header"]["recipNonce"].native == nonce
