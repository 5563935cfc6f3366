"""Generic checks of every request (RFC 9810 5.1.1, RFC 9483 3): as OpenSSL does, and stricter."""

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
    general_name,
    make_client,
    make_server,
    name,
    pki,
    signing_crafter,
    statuses,
    tid_of,
)
from cryptography.hazmat.primitives.asymmetric import ec

from sanscmp.engine.asn1 import CertReqMsg
from sanscmp.engine.checks import HeaderPolicy
from sanscmp.engine.client import RevocationSpec
from sanscmp.engine.errors import FailInfo
from sanscmp.engine.events import (
    Acknowledge,
    CertificatesConfirmed,
    CertificatesRequested,
    Issue,
)
from sanscmp.engine.handlers import CmpServer
from sanscmp.engine.protection import MacCredential
from sanscmp.engine.server import ServerOptions


def live_ids(server: CmpServer) -> dict[bytes, str]:
    store = server.engine.config.transactions
    return {t.transaction_id: t.state for t in store}  # type: ignore[attr-defined]


def genm() -> object:
    return body("genm", [{"infoType": "caCerts"}])


def waiting_for_certconf(clock: FixedClock, server: CmpServer, seed: bytes = b"wait"):  # type: ignore[no-untyped-def]
    """An ir answered (certConf not sent yet): the client transaction, the ip, the certConf."""
    transaction = make_client(clock=clock, seed=seed).ir([cert_request()])
    ip = exchange(server, transaction.request)
    cert_conf = transaction.receive(ip)
    assert cert_conf is not None and cert_conf["body"].name == "certConf"
    return transaction, ip, cert_conf


# ---- pvno ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("pvno", [2, 3])
def test_pvno_2_and_3_are_answered_with_the_request_s(pvno: int) -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    answer = exchange(server, Crafter(clock).message(genm(), pvno=pvno))  # type: ignore[arg-type]
    assert answer["body"].name == "genp"
    assert answer["header"]["pvno"].native == pvno
    error = exchange(server, Crafter(clock).message(body("pkiconf", None), pvno=pvno))
    assert fail_info(error) == {"badRequest"}
    assert error["header"]["pvno"].native == pvno


@pytest.mark.parametrize("pvno", [0, 1, 4, 99])
def test_other_pvno_is_unsupported_version(pvno: int) -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    request = Crafter(clock).message(genm(), pvno=pvno)  # type: ignore[arg-type]
    answer = exchange(server, request)
    assert fail_info(answer) == {"unsupportedVersion"}
    assert answer["header"]["pvno"].native == 2  # the version we speak
    assert tid_of(answer) == tid_of(request)
    assert answer["header"]["recipNonce"].native == request["header"]["senderNonce"].native


# ---- transactionID, nonces, time -----------------------------------------------------------------


def test_missing_transaction_id_is_bad_request() -> None:
    clock = FixedClock()
    answer = exchange(
        make_server(clock=clock),
        Crafter(clock).message(genm(), omit=["transactionID"]),  # type: ignore[arg-type]
    )
    assert fail_info(answer) == {"badRequest"}
    assert answer["header"]["transactionID"].native is None


@pytest.mark.parametrize("nonce", [None, b"", b"x" * 15])
def test_missing_or_short_sender_nonce(nonce: bytes | None) -> None:
    clock = FixedClock()
    crafter = Crafter(clock)
    if nonce is None:
        request = crafter.message(genm(), omit=["senderNonce"])  # type: ignore[arg-type]
    else:
        request = crafter.message(genm(), sender_nonce=nonce)  # type: ignore[arg-type]
    answer = exchange(make_server(clock=clock), request)
    assert fail_info(answer) == {"badSenderNonce"}
    assert tid_of(answer) == tid_of(request)


def test_sixteen_byte_nonce_is_enough() -> None:
    clock = FixedClock()
    request = Crafter(clock).message(genm(), sender_nonce=b"n" * 16)  # type: ignore[arg-type]
    assert exchange(make_server(clock=clock), request)["body"].name == "genp"


def test_replayed_request_is_refused_and_the_live_transaction_goes_on() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    transaction, _ip, cert_conf = waiting_for_certconf(clock, server)
    before = live_ids(server)
    replay = exchange(server, transaction.request)  # the very same bytes
    assert fail_info(replay) == {"badSenderNonce"}
    assert not server.transaction_closed
    assert live_ids(server) == before == {transaction.transaction_id: "waiting_certConf"}
    assert len(ca.issued[transaction.transaction_id]) == 1  # nothing issued twice
    assert exchange(server, cert_conf)["body"].name == "pkiconf"
    # replaying the final message after the end: refused, nothing happens
    assert fail_info(exchange(server, cert_conf)) == {"badSenderNonce"}
    assert ca.confirmed == [(transaction.transaction_id, 0)]


def test_replayed_first_message_of_a_closed_transaction_is_refused() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock, options=ServerOptions(grant_implicit_confirm=True))
    transaction = make_client(clock=clock, implicit_confirm=True).ir([cert_request()])
    assert exchange(server, transaction.request)["body"].name == "ip"
    assert server.transaction_closed
    assert fail_info(exchange(server, transaction.request)) == {"badSenderNonce"}
    assert len(ca.issued[transaction.transaction_id]) == 1


@pytest.mark.parametrize("follow_up", ["certConf", "pollReq"])
@pytest.mark.parametrize("recip_nonce", [None, b"r" * 16])
def test_wrong_recip_nonce_in_a_follow_up(follow_up: str, recip_nonce: bytes | None) -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}) if follow_up == "pollReq" else frozenset())
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).ir([cert_request()])
    answer = exchange(server, transaction.request)
    message = transaction.receive(answer)
    assert message["body"].name == follow_up
    crafted = Crafter(clock).follow_up(
        answer,
        message["body"],
        recip_nonce=recip_nonce,
        omit=["recipNonce"] if recip_nonce is None else [],
    )
    refused = exchange(server, crafted)
    assert fail_info(refused) == {"badRecipientNonce"}
    # an error inside the transaction: it carries the tid and echoes the nonce, and ends it
    assert tid_of(refused) == transaction.transaction_id
    assert refused["header"]["recipNonce"].native == crafted["header"]["senderNonce"].native
    assert server.transaction_closed and live_ids(server) == {}
    assert ca.cleaned == [transaction.transaction_id]


@pytest.mark.parametrize("skew", [-601, 601, 3600 * 24])
def test_message_time_skew_is_bad_time(skew: int) -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    sent = clock.now() + timedelta(seconds=skew)
    answer = exchange(server, Crafter(clock).message(genm(), message_time=sent))  # type: ignore[arg-type]
    assert fail_info(answer) == {"badTime"}


@pytest.mark.parametrize("skew", [-600, 0, 600])
def test_message_time_within_the_skew_or_absent_is_fine(skew: int) -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    sent = clock.now() + timedelta(seconds=skew)
    assert (
        exchange(server, Crafter(clock).message(genm(), message_time=sent))["body"].name == "genp"
    )  # type: ignore[arg-type]
    assert (
        exchange(server, Crafter(clock).message(genm(), message_time=None))["body"].name == "genp"
    )  # type: ignore[arg-type]


def test_message_time_check_is_configurable() -> None:
    clock = FixedClock()
    options = ServerOptions(header=HeaderPolicy(max_time_skew=None))
    server = make_server(clock=clock, options=options)
    sent = clock.now() - timedelta(days=300)
    assert (
        exchange(server, Crafter(clock).message(genm(), message_time=sent))["body"].name == "genp"
    )  # type: ignore[arg-type]
    strict = make_server(
        clock=clock, options=ServerOptions(header=HeaderPolicy(max_time_skew=timedelta(seconds=5)))
    )
    sent = clock.now() + timedelta(seconds=6)
    assert fail_info(exchange(strict, Crafter(clock).message(genm(), message_time=sent))) == {
        "badTime"
    }  # type: ignore[arg-type]


def test_recipient_naming_another_ca_is_wrong_authority() -> None:
    clock = FixedClock()
    own = general_name(pki().server.name).dump()
    server = make_server(
        clock=clock, options=ServerOptions(header=HeaderPolicy(server_names=(own,)))
    )
    assert perform_genm(server, clock, make_client(clock=clock).config.recipient) == "genp"
    assert perform_genm(server, clock, general_name(name("someone else"))) == "error"


def perform_genm(server: CmpServer, clock: FixedClock, recipient: object) -> str:
    client = make_client(clock=clock, seed=repr(recipient), recipient=recipient)
    answer = exchange(server, client.genm([]).request)
    if answer["body"].name == "error":
        assert fail_info(answer) == {"wrongAuthority"}
    return str(answer["body"].name)


# ---- protection ------------------------------------------------------------------------------


def test_unprotected_request_without_accept_unprotected_is_bad_message_check() -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    request = Crafter(clock, credential=None).message(genm())  # type: ignore[arg-type]
    answer = exchange(server, request)
    assert fail_info(answer) == {"badMessageCheck"}
    assert tid_of(answer) == tid_of(request)


@pytest.mark.parametrize("secret", [b"wrong", None])
def test_failing_mac_is_bad_message_check(secret: bytes | None) -> None:
    clock = FixedClock()
    reference = b"client-1" if secret else b"unknown"
    client = make_client(clock=clock, reference=reference, secret=secret or b"whatever")
    answer = exchange(make_server(clock=clock), client.genm([]).request)
    assert fail_info(answer) == {"badMessageCheck"}


# ---- transaction binding -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ir", "rr", "genm"])
def test_new_request_reusing_a_live_transaction_id(kind: str) -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    transaction, _ip, cert_conf = waiting_for_certconf(clock, server)
    client = make_client(clock=clock, seed=b"again")
    bodies = {
        "ir": client.ir([cert_request()]).request["body"],
        "rr": client.rr([RevocationSpec(pki().ca_name, 1)]).request["body"],
        "genm": genm(),
    }
    reuse = Crafter(clock).message(bodies[kind], tid=transaction.transaction_id)  # type: ignore[arg-type]
    answer = exchange(server, reuse)
    assert fail_info(answer) == {"transactionIdInUse"}
    assert not server.transaction_closed
    assert live_ids(server) == {transaction.transaction_id: "waiting_certConf"}
    assert ca.cleaned == []
    assert exchange(server, cert_conf)["body"].name == "pkiconf"


@pytest.mark.parametrize("intruder", ["mac", "other"])
def test_another_client_using_someone_s_transaction_id(intruder: str) -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    transaction, ip, cert_conf = waiting_for_certconf(clock, server)
    if intruder == "mac":
        crafter = Crafter(clock, credential=MacCredential(b"client-2", pki().secrets[b"client-2"]))
    else:
        crafter = signing_crafter(clock, "other")
    for stolen in (cert_conf["body"], body("pollReq", [{"certReqId": 0}]), genm()):
        answer = exchange(server, crafter.follow_up(ip, stolen))  # type: ignore[arg-type]
        assert fail_info(answer) == {"notAuthorized"}
        assert not server.transaction_closed
    assert live_ids(server) == {transaction.transaction_id: "waiting_certConf"}
    assert exchange(server, cert_conf)["body"].name == "pkiconf"  # the owner goes on
    assert ca.confirmed == [(transaction.transaction_id, 0)]


# ---- certConf and pollReq ------------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["unknown id", "wrong hash", "repeated id"])
def test_bad_certconf_is_bad_cert_id_and_ends_the_transaction(problem: str) -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    transaction, ip, cert_conf = waiting_for_certconf(clock, server)
    status = cert_conf["body"].chosen[0]
    if problem == "unknown id":
        entries = [{"certHash": status["certHash"].native, "certReqId": 7}]
    elif problem == "wrong hash":
        entries = [{"certHash": bytes(32), "certReqId": 0}]
    else:
        entries = [status.native, status.native]
    answer = exchange(server, Crafter(clock).follow_up(ip, body("certConf", entries)))
    assert fail_info(answer) == {"badCertId"}
    assert server.transaction_closed and live_ids(server) == {}
    assert ca.confirmed == []
    assert ca.cleaned == [transaction.transaction_id]


def test_certconf_for_an_unknown_transaction() -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    entries = [{"certHash": bytes(32), "certReqId": 0}]
    answer = exchange(server, Crafter(clock).message(body("certConf", entries)))
    assert fail_info(answer) == {"badRequest"}


@pytest.mark.parametrize("where", ["unknown", "waiting_certConf"])
def test_pollreq_when_not_polling(where: str) -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    poll = body("pollReq", [{"certReqId": 0}])
    if where == "unknown":
        answer = exchange(server, Crafter(clock).message(poll))
    else:
        _transaction, ip, _ = waiting_for_certconf(clock, server)
        answer = exchange(server, Crafter(clock).follow_up(ip, poll))
    assert answer["body"].name == "error"
    assert fail_info(answer) == {"badRequest"}
    assert live_ids(server) == {}


def test_pollreq_for_a_cert_req_id_never_requested() -> None:
    clock = FixedClock()
    server = make_server(IssuingCA(defer_kinds=frozenset({"cert"}), polls=3), clock=clock)
    transaction = make_client(clock=clock).ir([cert_request()])
    ip = exchange(server, transaction.request)
    answer = exchange(server, Crafter(clock).follow_up(ip, body("pollReq", [{"certReqId": 5}])))
    assert fail_info(answer) == {"badCertId"}
    assert live_ids(server) == {}


def test_certconf_while_polling_is_refused() -> None:
    clock = FixedClock()
    server = make_server(IssuingCA(defer_kinds=frozenset({"cert"}), polls=3), clock=clock)
    transaction = make_client(clock=clock).ir([cert_request()])
    ip = exchange(server, transaction.request)
    entries = [{"certHash": bytes(32), "certReqId": 0}]
    answer = exchange(server, Crafter(clock).follow_up(ip, body("certConf", entries)))
    assert fail_info(answer) == {"badRequest"}


# ---- certReqId rules -----------------------------------------------------------------------------


def _ir_with_ids(ids: list[int]) -> object:
    """An ir whose CertReqMsgs carry `ids` (a changed id breaks that request's signature POPO)."""
    messages = make_client(seed=b"ids").ir([cert_request() for _ in ids]).request["body"].chosen
    copies = []
    for message, cert_req_id in zip(messages, ids, strict=True):
        copy = CertReqMsg.load(message.dump())
        copy["certReq"]["certReqId"] = cert_req_id
        copies.append(copy)
    return body("ir", copies)


@pytest.mark.parametrize("ids", [[-1], [0, 0], [0, -5], [2, 1, 2]])
def test_negative_or_repeated_cert_req_ids_are_bad_request(ids: list[int]) -> None:
    clock = FixedClock()
    request = Crafter(clock).message(_ir_with_ids(ids))  # type: ignore[arg-type]
    answer = exchange(make_server(clock=clock), request)
    assert fail_info(answer) == {"badRequest"}


def test_distinct_cert_req_ids_need_not_start_at_zero() -> None:
    clock = FixedClock()
    server = make_server(clock=clock, options=ServerOptions(accept_raverified=False))
    answer = exchange(server, Crafter(clock).message(_ir_with_ids([3, 9])))  # type: ignore[arg-type]
    # the ids changed under the signature POPO: each request is rejected with badPOP, in order
    assert answer["body"].name == "ip"
    assert statuses(answer) == {3: "rejection", 9: "rejection"}
    assert [r["status"]["failInfo"].native for r in answer["body"].chosen["response"]] == [
        {"badPOP"},
        {"badPOP"},
    ]


def test_p10cr_is_answered_with_cert_req_id_minus_one_and_confirmed_with_it() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    key = ec.generate_private_key(ec.SECP256R1())
    transaction = make_client(clock=clock).p10cr(csr_der(key, name("p10")))
    cp = exchange(server, transaction.request)
    assert statuses(cp) == {-1: "accepted"}
    cert_conf = transaction.receive(cp)
    status = cert_conf["body"].chosen[0]
    # certReqId 0 instead of -1 names no certificate of this transaction
    zero = [{"certHash": status["certHash"].native, "certReqId": 0}]
    answer = exchange(server, Crafter(clock).follow_up(cp, body("certConf", zero)))
    assert fail_info(answer) == {"badCertId"}


def test_p10cr_certconf_with_minus_one() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    key = ec.generate_private_key(ec.SECP256R1())
    transaction = make_client(clock=clock).p10cr(csr_der(key, name("p10")))
    cp = exchange(server, transaction.request)
    cert_conf = transaction.receive(cp)
    assert [s["certReqId"].native for s in cert_conf["body"].chosen] == [-1]
    assert exchange(server, cert_conf)["body"].name == "pkiconf"
    assert ca.confirmed == [(transaction.transaction_id, -1)]


def test_bad_p10cr_signature_is_a_rejection_with_bad_pop() -> None:
    clock = FixedClock()
    key = ec.generate_private_key(ec.SECP256R1())
    der = bytearray(csr_der(key, name("p10")))
    der[-3] ^= 0x01  # inside the signature
    transaction = make_client(clock=clock).p10cr(bytes(der))
    cp = exchange(make_server(clock=clock), transaction.request)
    assert cp["body"].name == "cp"
    (response,) = cp["body"].chosen["response"]
    assert response["certReqId"].native == -1
    assert response["status"]["failInfo"].native == {"badPOP"}


# ---- implicitConfirm ----------------------------------------------------------------------------


@pytest.mark.parametrize("asked", [True, False])
def test_implicit_confirm_after_polling_follows_the_original_request(asked: bool) -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}), polls=1)
    options = ServerOptions(grant_implicit_confirm=True)
    server = make_server(ca, clock=clock, options=options)
    transaction = make_client(clock=clock, implicit_confirm=asked).ir([cert_request()])
    message = transaction.request
    responses = []
    while message is not None:
        responses.append(exchange(server, message))
        message = transaction.receive(responses[-1])
    final_ip = responses[2] if asked else responses[-2]
    infos = final_ip["header"]["generalInfo"].native or []
    assert any(i["infoType"] == "implicitConfirm" for i in infos) == asked
    assert transaction.result.implicit_confirm_granted == asked
    assert len(responses) == (3 if asked else 4)
    assert not any(
        i["infoType"] == "implicitConfirm"
        for i in (responses[0]["header"]["generalInfo"].native or [])
    )


def test_client_rejecting_its_certificate_in_certconf() -> None:
    clock = FixedClock()
    engine = make_server(clock=clock).engine
    transaction = make_client(clock=clock).ir([cert_request()])
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    certificate = pki().issue(ec.generate_private_key(ec.SECP256R1()).public_key(), name("x"))
    ip = engine.respond(inbound, [Issue(certificate)])
    cert_conf = transaction.receive(ip)  # the client rejects: not the key it asked for
    confirmed = engine.receive(cert_conf)
    assert isinstance(confirmed, CertificatesConfirmed)
    (confirmation,) = confirmed.confirmations
    assert not confirmation.accepted
    assert confirmation.status_info["failInfo"].native == {"incorrectData"}  # type: ignore[index]
    assert engine.respond(confirmed, Acknowledge())["body"].name == "pkiconf"
    assert FailInfo.incorrectData.name == "incorrectData"


@pytest.mark.parametrize("body_type", ["ir", "cr", "kur", "rr", "pollReq"])
def test_empty_request_content_is_bad_request(body_type: str) -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}), polls=3)
    server = make_server(ca, clock=clock)
    if body_type == "pollReq":
        transaction = make_client(clock=clock).ir([cert_request()])
        ip = exchange(server, transaction.request)
        answer = exchange(server, Crafter(clock).follow_up(ip, body("pollReq", [])))
        assert ("cert", transaction.transaction_id) in ca.calls
        assert ca.calls.count(("cert", transaction.transaction_id)) == 1  # not decided by it
    else:
        answer = exchange(server, Crafter(clock).message(body(body_type, [])))
    assert fail_info(answer) == {"badRequest"}
    assert live_ids(server) == {}
