"""Every row of DESIGN.md's seed table (OSSL_CMP_SRV_CTX_new and friends), each with a test."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cmp_pki import (
    Crafter,
    FixedClock,
    IssuingCA,
    body,
    cert_request,
    csr_der,
    exchange,
    fail_info,
    is_protected,
    make_client,
    make_server,
    name,
    perform,
    pki,
    ra_verified_body,
    signing_crafter,
    statuses,
    tid_of,
)
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.certhash import cert_hash
from sanscmp.engine.client import Phase, RevocationSpec
from sanscmp.engine.errors import FailInfo
from sanscmp.engine.handlers import CmpServer, Handlers
from sanscmp.engine.server import ProtocolContext, ServerOptions
from sanscmp.engine.transfer import server_perform

# ---- OSSL_CMP_SRV_CTX_new / _free --------------------------------------------------------------


def test_construct_with_configuration_and_no_callbacks_means_nothing_is_supported() -> None:
    clock = FixedClock()
    server = make_server(clock=clock, handlers=Handlers())
    options = server.engine.options
    assert isinstance(server, CmpServer)
    assert (options.send_unprotected_errors, options.accept_unprotected) == (False, False)
    assert (options.accept_raverified, options.grant_implicit_confirm) == (False, False)
    assert options.transaction_timeout == timedelta(minutes=10)
    result = perform(server, make_client(clock=clock).ir([cert_request()]))
    assert result.fail_info == {"badRequest"}


def test_close_expires_open_transactions_and_runs_the_hooks() -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"rr"}))
    server = make_server(ca, clock=clock)
    client = make_client(clock=clock)
    waiting = client.ir([cert_request(), cert_request()])
    assert waiting.receive(exchange(server, waiting.request)) is not None  # certConf not sent
    polling = client.rr([RevocationSpec(pki().ca_name, 1)])
    assert exchange(server, polling.request)["body"].name == "error"  # waiting
    assert len(server.engine.config.transactions) == 2  # type: ignore[arg-type]

    server.close()

    assert len(server.engine.config.transactions) == 0  # type: ignore[arg-type]
    by_tid = {event.transaction_id: event for event in ca.expired}
    assert set(by_tid) == {waiting.transaction_id, polling.transaction_id}
    assert len(by_tid[waiting.transaction_id].unconfirmed) == 2
    assert by_tid[waiting.transaction_id].state == "waiting_certConf"
    assert by_tid[polling.transaction_id].unconfirmed == ()
    assert set(ca.cleaned) == set(by_tid)
    assert sorted(ca.revoked) == sorted(
        c.serial_number for c in by_tid[waiting.transaction_id].unconfirmed
    )
    # a closed server answers everything with systemUnavail, keeping the request's tid
    late = make_client(clock=clock, seed=b"late").genm([{"infoType": "caCerts"}])
    answer = exchange(server, late.request)
    assert fail_info(answer) == {"systemUnavail"}
    assert tid_of(answer) == late.transaction_id


# ---- OSSL_CMP_SRV_CTX_init: the six callbacks ------------------------------------------------


def test_init_sets_custom_context_and_callbacks() -> None:
    ca = IssuingCA()
    server = make_server(ca, custom_ctx={"name": "mine"})
    assert server.get0_custom_ctx() == {"name": "mine"}
    server.init("other context", Handlers(process_genm=lambda s, r, items: []))
    assert server.get0_custom_ctx() == "other context"
    assert server.handlers.process_cert_request is None
    assert perform(server, make_client().genm([])).general_info == []


@pytest.mark.parametrize("body_type", ["ir", "cr", "kur", "p10cr"])
def test_cert_request_callback_serves_ir_cr_kur_p10cr(body_type: str) -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    client = make_client("ec", clock=clock)
    key = ec.generate_private_key(ec.SECP256R1())
    if body_type == "p10cr":
        transaction = client.p10cr(csr_der(key, name("p10 subject")))
    elif body_type == "kur":
        transaction = client.kur([cert_request(key=key)], pki().clients["ec"].certificate)
    else:
        transaction = getattr(client, body_type)([cert_request(key=key)])
    result = perform(server, transaction)
    rid = -1 if body_type == "p10cr" else 0
    assert transaction.phase is Phase.done, result.error
    certificate = result.certificates[rid]
    assert certificate.public_key() == key.public_key()
    assert ca.issued[transaction.transaction_id][rid] == certificate
    assert ("cert", transaction.transaction_id) in ca.calls
    assert ca.confirmed == [(transaction.transaction_id, rid)]


def _missing(handler: str):  # type: ignore[no-untyped-def]
    """The server without `handler`, a clock, and the message exercising it (and its answer)."""
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}) if handler == "process_pollReq" else frozenset())
    server = make_server(ca, clock=clock, handlers=ca.handlers(**{handler: False}))
    client = make_client(clock=clock)
    if handler == "process_cert_request":
        return ca, server, exchange(server, client.ir([cert_request()]).request)
    if handler == "process_rr":
        return ca, server, exchange(server, client.rr([RevocationSpec(pki().ca_name, 5)]).request)
    if handler == "process_genm":
        return ca, server, exchange(server, client.genm([{"infoType": "caCerts"}]).request)
    if handler == "process_error":
        return ca, server, exchange(server, client.error(FailInfo.badTime, "x").request)
    transaction = client.ir([cert_request()])
    follow = transaction.receive(exchange(server, transaction.request))
    assert follow is not None
    return ca, server, exchange(server, follow)  # certConf, or pollReq


HANDLERS = [
    "process_cert_request",
    "process_rr",
    "process_genm",
    "process_error",
    "process_certConf",
    "process_pollReq",
]


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_missing_callback_means_the_message_type_is_unsupported(handler: str) -> None:
    ca, server, answer = _missing(handler)
    assert answer["body"].name == "error"
    assert fail_info(answer) == {"badRequest"}
    assert "not supported" in answer["body"].chosen["pKIStatusInfo"]["statusString"].native[0]
    assert server.transaction_closed
    assert len(server.engine.config.transactions) == 0  # type: ignore[arg-type]
    assert ca.cleaned == [tid_of(answer)]


def test_rr_callback_gets_issuer_and_serial_per_entry() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    client = make_client(clock=clock)
    issued = perform(server, client.ir([cert_request()])).certificates[0]
    result = perform(server, client.rr([RevocationSpec(pki().ca_name, issued.serial_number)]))
    assert result.statuses[0]["status"].native == "accepted"
    assert ca.revoked == [issued.serial_number]


def test_genm_callback_answers_ca_certs() -> None:
    result = perform(make_server(), make_client().genm([{"infoType": "caCerts"}]))
    (item,) = result.general_info
    assert item["infoType"].native == "caCerts"
    assert item["infoValue"][0].dump() == pki().ca_cert.public_bytes(Encoding.DER)


def test_error_callback_gets_the_status_and_the_answer_is_pkiconf() -> None:
    ca = IssuingCA()
    client = make_client()
    transaction = client.error(FailInfo.badTime, "clock trouble")
    result = perform(make_server(ca), transaction)
    assert transaction.phase is Phase.done and result.error is None
    ((tid, info),) = ca.errors
    assert tid == transaction.transaction_id
    assert info["failInfo"].native == {"badTime"}


def test_certconf_callback_gets_cert_req_id_and_hash() -> None:
    clock = FixedClock()
    seen = []
    ca = IssuingCA()
    handlers = ca.handlers()
    handlers.process_certConf = lambda s, req, rid, digest, info: seen.append((rid, digest)) or True
    server = make_server(ca, clock=clock, handlers=handlers)
    transaction = make_client(clock=clock).ir([cert_request()])
    result = perform(server, transaction)
    der = result.certificates[0].public_bytes(Encoding.DER)
    assert seen == [(0, cert_hash(der))]


def test_certconf_callback_refusing_answers_an_error() -> None:
    clock = FixedClock()
    ca = IssuingCA(accept_confirm=False)
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).ir([cert_request()])
    result = perform(server, transaction)
    assert result.fail_info == {"badRequest"}
    assert server.transaction_closed


def test_pollreq_callback_decides_when_the_deferred_request_is_ready() -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}), polls=2, check_after=7)
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).ir([cert_request()])
    result = perform(server, transaction)
    assert 0 in result.certificates
    kinds = [kind for kind, _ in ca.calls]
    assert kinds == ["cert", "pollReq", "pollReq", "pollReq", "cert", "certConf"]


def test_a_raising_callback_answers_system_failure() -> None:
    server = make_server(IssuingCA(fail_with=RuntimeError("database down")))
    answer = exchange(server, make_client().ir([cert_request()]).request)
    assert fail_info(answer) == {"systemFailure"}
    assert "database" not in str(answer["body"].chosen.native)  # no internals leak


# ---- accessors ----------------------------------------------------------------------------------


def test_get0_custom_ctx_and_get0_cmp_ctx() -> None:
    clock = FixedClock()
    context = object()
    server = make_server(clock=clock, custom_ctx=context)
    assert server.get0_custom_ctx() is context
    cmp_ctx = server.get0_cmp_ctx()
    assert isinstance(cmp_ctx, ProtocolContext)
    assert cmp_ctx.transaction_id is None and cmp_ctx.closed
    transaction = make_client(clock=clock).ir([cert_request()])
    response = server.process_request(transaction.request)
    assert server.get0_cmp_ctx() is cmp_ctx
    assert cmp_ctx.transaction_id == transaction.transaction_id
    assert cmp_ctx.state == "waiting_certConf" and not cmp_ctx.closed
    assert cmp_ctx.last_request is not None and cmp_ctx.last_response is response
    assert cmp_ctx.last_request.dump() == transaction.request.dump()


# ---- the four options ---------------------------------------------------------------------------


@pytest.mark.parametrize("on", [True, False])
def test_send_unprotected_errors(on: bool) -> None:
    server = make_server(options=ServerOptions(send_unprotected_errors=on))
    client = make_client("mac", secret=b"wrong secret")
    answer = exchange(server, client.ir([cert_request()]).request)
    assert fail_info(answer) == {"badMessageCheck"}
    assert is_protected(answer) is not on
    # a rejection of every request counts as a negative answer too
    server = make_server(
        IssuingCA(reject_ids=frozenset({0})), options=ServerOptions(send_unprotected_errors=on)
    )
    answer = exchange(server, make_client().ir([cert_request()]).request)
    assert statuses(answer) == {0: "rejection"}
    assert is_protected(answer) is not on
    # positive answers stay protected
    server.set_send_unprotected_errors(on)
    assert is_protected(exchange(server, make_client(seed=b"g").genm([]).request))


@pytest.mark.parametrize("on", [True, False])
def test_accept_unprotected(on: bool) -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    server.set_accept_unprotected(on)
    clients = (make_client("none", clock=clock), make_client(secret=b"bad", clock=clock, seed=b"b"))
    for client in clients:
        transaction = client.genm([{"infoType": "caCerts"}])
        answer = exchange(server, transaction.request)
        if on:
            assert answer["body"].name == "genp"
            assert is_protected(answer)  # with the server's own key
        else:
            assert fail_info(answer) == {"badMessageCheck"}


@pytest.mark.parametrize("on", [True, False])
def test_accept_raverified(on: bool) -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    server.set_accept_raverified(on)
    # the client engine cannot build raVerified (see the report): a crafted, signed cr
    answer = exchange(server, signing_crafter(clock).message(ra_verified_body("cr")))
    assert answer["body"].name == "cp"
    response = answer["body"].chosen["response"][0]
    if on:
        assert response["status"]["status"].native == "accepted"
        assert response["certifiedKeyPair"].native is not None
        assert not server.transaction_closed
    else:
        assert response["status"]["status"].native == "rejection"
        assert response["status"]["failInfo"].native == {"badPOP"}
        assert server.transaction_closed


@pytest.mark.parametrize("asked", [True, False])
@pytest.mark.parametrize("on", [True, False])
def test_grant_implicit_confirm(on: bool, asked: bool) -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    server.set_grant_implicit_confirm(on)
    transaction = make_client(clock=clock, implicit_confirm=asked).ir([cert_request()])
    ip = exchange(server, transaction.request)
    granted = on and asked
    infos = ip["header"]["generalInfo"].native or []
    assert any(i["infoType"] == "implicitConfirm" for i in infos) == granted
    assert server.transaction_closed == granted
    follow = transaction.receive(ip)
    assert transaction.result.implicit_confirm_granted == granted
    assert (follow is None) == granted
    if follow is not None:
        assert exchange(server, follow)["body"].name == "pkiconf"
    assert ca.cleaned == [transaction.transaction_id]


# ---- transaction closed <=> status -1 -----------------------------------------------------------


def test_transaction_closed_after_each_step() -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}), polls=2)
    server = make_server(ca, clock=clock)
    client = make_client(clock=clock)
    transaction = client.ir([cert_request()])
    seen = []
    message: PKIMessage | None = transaction.request
    while message is not None:
        response = exchange(server, message)
        seen.append((response["body"].name, server.transaction_closed))
        message = transaction.receive(response)
    assert seen == [
        ("ip", False),  # waiting
        ("pollRep", False),
        ("pollRep", False),
        ("ip", False),  # issued, waiting for certConf
        ("pkiconf", True),
    ]
    for start in (
        client.rr([RevocationSpec(pki().ca_name, 9)]),
        client.genm([]),
        client.error(FailInfo.badRequest),
    ):
        exchange(server, start.request)
        assert server.transaction_closed
    # an error ends the transaction too; a refused replay leaves it open
    pending = client.ir([cert_request()])
    ip = exchange(server, pending.request)
    assert not server.transaction_closed
    assert fail_info(exchange(server, pending.request)) == {"badSenderNonce"}
    assert not server.transaction_closed
    wrong = body("certConf", [{"certHash": bytes(32), "certReqId": 0}])  # but it is polling
    assert fail_info(exchange(server, Crafter(clock).follow_up(ip, wrong))) == {"badRequest"}
    assert server.transaction_closed
    garbage = server.process_request(b"\x30\x03\x02\x01\x02")
    assert garbage["body"].name == "error" and server.transaction_closed


# ---- process_request and server_perform ---------------------------------------------------------


def test_process_request_takes_bytes_or_parsed_messages() -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    client = make_client(clock=clock)
    as_bytes = server.process_request(client.genm([]).request.dump())
    parsed = server.process_request(client.genm([]).request)
    assert isinstance(as_bytes, PKIMessage) and isinstance(parsed, PKIMessage)
    assert as_bytes["body"].name == parsed["body"].name == "genp"


def test_server_perform_is_an_in_process_transfer() -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    transfer = server_perform(server)
    transaction = make_client(clock=clock).ir([cert_request()])
    seen: list[bytes] = []

    def recording(request: PKIMessage) -> PKIMessage:
        response = transfer(request)
        seen.append(response.dump())
        return response

    message: PKIMessage | None = transaction.request
    while message is not None:
        message = transaction.receive(recording(message))
    assert transaction.phase is Phase.done
    assert len(seen) == 2  # ip, pkiconf: each crossed as DER
    assert all(PKIMessage.load(der).dump() == der for der in seen)


# ---- delayed delivery (OpenSSL 3.3) ------------------------------------------------------------


def _poll_until_done(
    server: CmpServer, transaction, first: PKIMessage, polls: int, waiting_body: str
) -> PKIMessage:  # type: ignore[no-untyped-def]
    """Send `first`, expect a waiting answer, then `polls` pollRep, then return the final one."""
    answer = exchange(server, first)
    assert answer["body"].name == waiting_body
    if waiting_body == "error":
        assert answer["body"].chosen["pKIStatusInfo"]["status"].native == "waiting"
    else:
        assert set(statuses(answer).values()) == {"waiting"}
    assert not server.transaction_closed
    message = transaction.receive(answer)
    for _ in range(polls):
        assert message["body"].name == "pollReq"
        answer = exchange(server, message)
        assert answer["body"].name == "pollRep", fail_info(answer)
        assert answer["body"].chosen[0]["checkAfter"].native == 5
        assert not server.transaction_closed
        message = transaction.receive(answer)
    return exchange(server, message)


@pytest.mark.parametrize("polls", [0, 1, 3])
@pytest.mark.parametrize("body_type", ["ir", "cr", "kur", "p10cr", "rr", "genm"])
def test_delayed_delivery_for_every_request_type(body_type: str, polls: int) -> None:
    clock = FixedClock()
    kind = {"rr": "rr", "genm": "genm"}.get(body_type, "cert")
    ca = IssuingCA(defer_kinds=frozenset({kind}), polls=polls)
    server = make_server(ca, clock=clock)
    client = make_client("ec", clock=clock)
    key = ec.generate_private_key(ec.SECP256R1())
    if body_type == "rr":
        target = perform(server, client.cr([cert_request()])).certificates[0]
        transaction = client.rr([RevocationSpec(pki().ca_name, target.serial_number)])
    elif body_type == "genm":
        transaction = client.genm([{"infoType": "caCerts"}])
    elif body_type == "p10cr":
        transaction = client.p10cr(csr_der(key, name("p10")))
    elif body_type == "kur":
        transaction = client.kur([cert_request(key=key)], pki().clients["ec"].certificate)
    else:
        transaction = getattr(client, body_type)([cert_request(key=key)])
    waiting_body = {"ir": "ip", "cr": "cp", "kur": "kup", "p10cr": "cp"}.get(body_type, "error")
    final = _poll_until_done(server, transaction, transaction.request, polls, waiting_body)
    expected = {"rr": "rp", "genm": "genp"}.get(body_type, waiting_body)
    assert final["body"].name == expected
    follow = transaction.receive(final)
    if expected in ("ip", "cp", "kup"):
        rid = -1 if body_type == "p10cr" else 0
        assert set(statuses(final)) == {rid}
        assert follow is not None and follow["body"].name == "certConf"
        assert not server.transaction_closed
        assert transaction.receive(exchange(server, follow)) is None
    else:
        assert follow is None
    assert server.transaction_closed
    assert transaction.phase is Phase.done
    assert ca.cleaned[-1] == transaction.transaction_id


@pytest.mark.parametrize("polls", [0, 2])
def test_delayed_delivery_of_the_certconf_answer(polls: int) -> None:
    # The client engine cannot poll for a delayed pkiconf (see the report): crafted pollReqs.
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"certConf"}), polls=polls)
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).ir([cert_request(), cert_request()])
    cert_conf = transaction.receive(exchange(server, transaction.request))
    assert cert_conf is not None
    answer = exchange(server, cert_conf)
    assert answer["body"].name == "error"
    assert answer["body"].chosen["pKIStatusInfo"]["status"].native == "waiting"
    assert server.get0_cmp_ctx().state == "polling" and not server.transaction_closed
    crafter = Crafter(clock)
    for _ in range(polls):
        answer = exchange(server, crafter.follow_up(answer, body("pollReq", [{"certReqId": -1}])))
        assert answer["body"].name == "pollRep"
        assert answer["body"].chosen[0]["certReqId"].native == -1
    answer = exchange(server, crafter.follow_up(answer, body("pollReq", [{"certReqId": -1}])))
    assert answer["body"].name == "pkiconf"
    assert server.transaction_closed
    assert sorted(ca.confirmed) == [
        (transaction.transaction_id, 0),
        (transaction.transaction_id, 1),
    ]


# ---- the clean-transaction hook and expiry -----------------------------------------------------


def test_clean_hook_runs_whenever_a_transaction_ends_and_only_then() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    client = make_client(clock=clock)
    transaction = client.ir([cert_request()])
    ip = exchange(server, transaction.request)
    assert ca.cleaned == []
    # refusals that leave the live transaction alone do not clean it
    assert fail_info(exchange(server, transaction.request)) == {"badSenderNonce"}
    assert fail_info(
        exchange(
            server,
            Crafter(clock).message(client.genm([]).request["body"], tid=transaction.transaction_id),
        )
    ) == {"transactionIdInUse"}
    assert ca.cleaned == []
    cert_conf = transaction.receive(ip)
    assert exchange(server, cert_conf)["body"].name == "pkiconf"
    assert ca.cleaned == [transaction.transaction_id]
    # an error that ends a transaction cleans it too
    other = client.ir([cert_request()])
    ip = exchange(server, other.request)
    bad = Crafter(clock).follow_up(ip, body("certConf", [{"certHash": b"1" * 32, "certReqId": 0}]))
    assert fail_info(exchange(server, bad)) == {"badCertId"}
    assert ca.cleaned == [transaction.transaction_id, other.transaction_id]


def test_expiry_runs_the_expiry_handler_with_unconfirmed_certificates() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    options = ServerOptions(transaction_timeout=timedelta(seconds=60))
    server = make_server(ca, clock=clock, options=options)
    client = make_client(clock=clock)
    confirmed = client.ir([cert_request()])
    stale = client.ir([cert_request(), cert_request()])
    cert_conf = confirmed.receive(exchange(server, confirmed.request))
    stale_conf = stale.receive(exchange(server, stale.request))
    clock.advance(59)
    assert server.expire() == [] and ca.expired == []
    assert exchange(server, cert_conf)["body"].name == "pkiconf"  # activity in time
    clock.advance(1)
    (event,) = server.expire()
    assert ca.expired == [event]
    assert event.transaction_id == stale.transaction_id
    assert event.request_type == "ir" and event.state == "waiting_certConf"
    issued = ca.issued[stale.transaction_id]
    assert sorted(c.serial_number for c in event.unconfirmed) == sorted(
        c.serial_number for c in issued.values()
    )
    assert ca.cleaned == [confirmed.transaction_id, stale.transaction_id]
    assert sorted(ca.revoked) == sorted(c.serial_number for c in event.unconfirmed)
    late = exchange(server, stale_conf)
    assert fail_info(late) == {"badRequest"}  # certConf for an unknown transaction
    assert server.expire() == []


def test_activity_extends_a_transaction_s_life() -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}), polls=5)
    server = make_server(
        ca, clock=clock, options=ServerOptions(transaction_timeout=timedelta(seconds=60))
    )
    transaction = make_client(clock=clock).ir([cert_request()])
    message = transaction.receive(exchange(server, transaction.request))
    for _ in range(5):
        clock.advance(50)
        assert server.expire() == []
        message = transaction.receive(exchange(server, message))
    clock.advance(61)
    assert [e.state for e in server.expire()] == ["polling"]
