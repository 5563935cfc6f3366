"""End-to-end flows: the client engine against a CmpServer through `transfer.server_perform`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asn1crypto.crl import CRLReason
from asn1crypto.x509 import Name
from cmp_pki import (
    Crafter,
    FixedClock,
    IssuingCA,
    body,
    cert_request,
    csr_der,
    exchange,
    fail_info,
    make_client,
    make_server,
    name,
    perform,
    pki,
    statuses,
)
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from sanscmp.engine.client import (
    CertRequestSpec,
    ClientConfig,
    ClientEngine,
    Phase,
    RevocationSpec,
)
from sanscmp.engine.errors import FailInfo
from sanscmp.engine.events import (
    Acknowledge,
    CertificatesConfirmed,
    CertificatesRequested,
    Issue,
    Reject,
    RevocationRequested,
    Revoked,
)
from sanscmp.engine.protection import MacCredential, Pbmac1Scheme, SignatureCredential
from sanscmp.engine.responses import status_info
from sanscmp.engine.server import Answered, ServerOptions
from sanscmp.engine.transfer import run

KEY_RSA = rsa.generate_private_key(65537, 2048)

# ---- enrolment ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pvno", [2, 3])
@pytest.mark.parametrize("kind", ["mac", "ec", "rsa"])
def test_ir_and_certconf(kind: str, pvno: int) -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    key = ec.generate_private_key(ec.SECP256R1())
    transaction = make_client(kind, clock=clock, pvno=pvno).ir([cert_request("me", key)])
    result = perform(server, transaction)
    assert transaction.phase is Phase.done, result.error
    certificate = result.certificates[0]
    assert certificate.public_key() == key.public_key()
    assert certificate.subject == name("me")
    assert result.ca_pubs == [pki().ca_cert]
    assert pki().ca_cert in result.extra_certs
    assert ca.confirmed == [(transaction.transaction_id, 0)]
    assert server.transaction_closed
    assert len(server.engine.config.transactions) == 0  # type: ignore[arg-type]


def test_pbmac1_protected_enrolment_is_answered_with_pbmac1() -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    secret = pki().secrets[b"client-2"]
    credential = MacCredential(b"client-2", secret, Pbmac1Scheme(iterations=2000))
    client = make_client(clock=clock, reference=b"client-2")
    client.config.credential = credential
    transaction = client.ir([cert_request()])
    ip = exchange(server, transaction.request)
    algorithm = ip["header"]["protectionAlg"]["algorithm"].native
    assert algorithm == transaction.request["header"]["protectionAlg"]["algorithm"].native
    assert ip["header"]["senderKID"].native == b"client-2"
    cert_conf = transaction.receive(ip)
    assert transaction.receive(exchange(server, cert_conf)) is None
    assert transaction.phase is Phase.done


@pytest.mark.parametrize("granted", [True, False])
def test_implicit_confirm(granted: bool) -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock, options=ServerOptions(grant_implicit_confirm=granted))
    transaction = make_client(clock=clock, implicit_confirm=True).ir([cert_request()])
    result = perform(server, transaction)
    assert transaction.phase is Phase.done
    assert result.implicit_confirm_granted is granted
    assert 0 in result.certificates
    calls = [call for call, _ in ca.calls]
    assert calls == (["cert"] if granted else ["cert", "certConf"])


@pytest.mark.parametrize("granted", [True, False])
def test_store_writes_per_enrolment(granted: bool) -> None:
    """A transaction closed by its first answer was never stored, so nothing is deleted for it;
    one waiting for certConf is saved once and deleted once."""
    clock = FixedClock()
    server = make_server(clock=clock, options=ServerOptions(grant_implicit_confirm=granted))
    store = server.engine.config.transactions
    writes: list[str] = []
    save, delete = store.save, store.delete
    store.save = lambda t: (writes.append("save"), save(t))[1]  # type: ignore[method-assign]
    store.delete = lambda tid: (writes.append("delete"), delete(tid))[1]  # type: ignore[method-assign]
    transaction = make_client(clock=clock, implicit_confirm=True).ir([cert_request()])
    perform(server, transaction)
    assert transaction.phase is Phase.done
    assert writes == ([] if granted else ["save", "delete"])
    assert store.load(transaction.transaction_id) is None


@pytest.mark.parametrize("polls", [1, 2, 4])
def test_polling_k_times_then_issue(polls: int) -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}), polls=polls, check_after=3)
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).ir([cert_request(), cert_request()])
    message = transaction.request
    bodies, waits = [], []
    while message is not None:
        response = exchange(server, message)
        bodies.append(response["body"].name)
        message = transaction.receive(response)
        if transaction.phase is Phase.polling:
            waits.append(transaction.check_after)
            clock.advance(transaction.check_after)
    assert bodies == ["ip"] + ["pollRep"] * polls + ["ip", "pkiconf"]
    assert waits[1:] == [3] * polls
    assert sorted(transaction.result.certificates) == [0, 1]
    assert sorted(rid for _, rid in ca.confirmed) == [0, 1]


def test_rejection_is_an_ip_with_rejection_status_and_failinfo() -> None:
    clock = FixedClock()
    ca = IssuingCA(reject_ids=frozenset({0}))
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).ir([cert_request()])
    ip = exchange(server, transaction.request)
    assert ip["body"].name == "ip"
    (response,) = ip["body"].chosen["response"]
    assert response["status"]["status"].native == "rejection"
    assert response["status"]["failInfo"].native == {"badCertTemplate"}
    assert response["status"]["statusString"].native == ["certReqId 0 refused"]
    assert server.transaction_closed
    assert transaction.receive(ip) is None
    assert transaction.phase is Phase.failed
    assert transaction.result.fail_info == {"badCertTemplate"}


def test_several_cert_requests_in_one_ir_each_answered() -> None:
    clock = FixedClock()
    ca = IssuingCA(reject_ids=frozenset({1, 3}))
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).ir([cert_request(f"n{i}") for i in range(5)])
    result = perform(server, transaction)
    assert {rid: info["status"].native for rid, info in result.statuses.items()} == {
        0: "accepted",
        1: "rejection",
        2: "accepted",
        3: "rejection",
        4: "accepted",
    }
    assert sorted(result.certificates) == [0, 2, 4]
    assert [c.subject for c in result.certificates.values()] == [name("n0"), name("n2"), name("n4")]
    # one certConf with three CertStatus, each confirmed
    assert sorted(rid for _, rid in ca.confirmed) == [0, 2, 4]


def test_p10cr() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    key = ec.generate_private_key(ec.SECP256R1())
    transaction = make_client("ec", clock=clock).p10cr(csr_der(key, name("from csr")))
    cp = exchange(server, transaction.request)
    assert cp["body"].name == "cp"
    assert statuses(cp) == {-1: "accepted"}  # RFC 9483 4.1.4: certReqId -1 for p10cr
    cert_conf = transaction.receive(cp)
    assert cert_conf["body"].chosen[0]["certReqId"].native == -1
    assert transaction.receive(exchange(server, cert_conf)) is None
    assert transaction.result.certificates[-1].subject == name("from csr")
    assert ca.confirmed == [(transaction.transaction_id, -1)]


def test_kur_protected_with_the_old_certificate() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    old_key = ec.generate_private_key(ec.SECP256R1())
    enrolment = make_client(clock=clock).ir([cert_request("me", old_key)])
    old = perform(server, enrolment).certificates[0]
    updater = ClientEngine(
        ClientConfig(
            clock=clock,
            random=make_client(seed=b"kur").config.random,
            credential=SignatureCredential(old_key, old),
            recipient=make_client().config.recipient,
            trust=pki().trust,
        )
    )
    new_key = ec.generate_private_key(ec.SECP256R1())
    transaction = updater.kur([cert_request("me", new_key)], old)
    kup = exchange(server, transaction.request)
    assert kup["body"].name == "kup"
    request_header = transaction.request["header"]
    assert request_header["sender"].chosen.native == Name.load(old.subject.public_bytes()).native
    cert_conf = transaction.receive(kup)
    assert transaction.receive(exchange(server, cert_conf)) is None
    assert transaction.result.certificates[0].public_key() == new_key.public_key()
    controls = transaction.request["body"].chosen[0]["certReq"]["controls"]
    assert controls[0]["value"]["serialNumber"].native == old.serial_number


def test_several_cert_statuses_in_one_certconf() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).cr([cert_request() for _ in range(3)])
    transaction.config = transaction.config  # cr with a MAC client is fine for the engine
    cert_conf = transaction.receive(exchange(server, transaction.request))
    assert [s["certReqId"].native for s in cert_conf["body"].chosen] == [0, 1, 2]
    assert exchange(server, cert_conf)["body"].name == "pkiconf"
    assert sorted(rid for _, rid in ca.confirmed) == [0, 1, 2]


def test_a_certconf_confirming_only_some_certificates() -> None:
    clock = FixedClock()
    engine = make_server(clock=clock).engine  # the event API, no callbacks
    transaction = make_client(clock=clock).ir([cert_request(), cert_request()])
    inbound = engine.receive(transaction.request.dump())
    assert isinstance(inbound, CertificatesRequested)
    certificates = [
        pki().issue(load_der_public_key(r.popo.public_key), name(f"c{i}"))  # type: ignore[arg-type]
        for i, r in enumerate(inbound.requests)
    ]
    ip = engine.respond(inbound, [Issue(c) for c in certificates])
    cert_conf = transaction.receive(ip)
    only_first = Crafter(clock).follow_up(ip, body("certConf", [cert_conf["body"].chosen[0]]))
    confirmed = engine.receive(only_first.dump())
    assert isinstance(confirmed, CertificatesConfirmed)
    assert [c.cert_req_id for c in confirmed.confirmations] == [0]
    assert confirmed.confirmations[0].accepted
    assert confirmed.unconfirmed == (certificates[1],)
    assert engine.respond(confirmed, Acknowledge())["body"].name == "pkiconf"
    assert engine.transaction_closed


# ---- revocation, general messages, errors ----------------------------------------------------


def test_rr_with_several_entries_and_mixed_results() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    client = make_client(clock=clock)
    certificates = perform(server, client.ir([cert_request(), cert_request()])).certificates
    entries = [
        RevocationSpec(pki().ca_name, certificates[0].serial_number),
        RevocationSpec(pki().ca_name, 999_999),  # unknown: rejected
        RevocationSpec(pki().ca_name, certificates[1].serial_number),
    ]
    transaction = client.rr(entries)
    result = perform(server, transaction)
    assert transaction.phase is Phase.done
    assert [result.statuses[i]["status"].native for i in range(3)] == [
        "accepted",
        "rejection",
        "accepted",
    ]
    assert result.statuses[1]["failInfo"].native == {"badCertId"}
    assert ca.revoked == [certificates[0].serial_number, certificates[1].serial_number]


def test_rr_reasons_reach_the_event_api() -> None:
    clock = FixedClock()
    engine = make_server(clock=clock).engine
    reason = {
        "extn_id": "2.5.29.21",
        "critical": False,
        "extn_value": CRLReason("key_compromise").dump(),
    }
    details = [
        {"certDetails": {"serialNumber": 7}, "crlEntryDetails": [reason]},
        {"certDetails": {"serialNumber": 8}},
    ]
    inbound = engine.receive(Crafter(clock).message(body("rr", details)).dump())
    assert isinstance(inbound, RevocationRequested)
    assert inbound.reasons == (1, None)
    assert [e["serialNumber"].native for e in inbound.entries] == [7, 8]
    rp = engine.respond(inbound, [Revoked(), Reject(FailInfo.certRevoked, "already")])
    assert [s["status"].native for s in rp["body"].chosen["status"]] == ["accepted", "rejection"]


def test_genm_ca_certs() -> None:
    result = perform(make_server(), make_client("rsa").genm([{"infoType": "caCerts"}]))
    assert result.general_info[0]["infoType"].native == "caCerts"
    certificates = result.general_info[0]["infoValue"]
    assert [c.dump() for c in certificates] == [pki().ca_cert.public_bytes(Encoding.DER)]


def test_genm_with_an_unknown_info_type_gets_an_empty_genp() -> None:
    result = perform(make_server(), make_client().genm([{"infoType": "1.2.3.4"}]))
    assert result.general_info == []


@pytest.mark.parametrize("state", ["new", "waiting_certConf", "polling"])
def test_client_error_is_answered_with_pkiconf(state: str) -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}) if state == "polling" else frozenset())
    server = make_server(ca, clock=clock)
    client = make_client(clock=clock)
    if state == "new":
        transaction = client.error(FailInfo.badDataFormat, "could not parse")
        result = perform(server, transaction)
        assert transaction.phase is Phase.done and result.error is None
        tid = transaction.transaction_id
    else:
        enrolment = client.ir([cert_request()])
        answer = exchange(server, enrolment.request)
        crafted = Crafter(clock).follow_up(answer, client.error(FailInfo.badCertId).request["body"])
        assert exchange(server, crafted)["body"].name == "pkiconf"
        tid = enrolment.transaction_id
    assert server.transaction_closed
    assert [t for t, _ in ca.errors] == [tid]
    assert ca.cleaned == [tid]


def test_error_ending_a_transaction_reports_the_unconfirmed_certificates() -> None:
    clock = FixedClock()
    engine = make_server(clock=clock).engine
    client = make_client(clock=clock)
    transaction = client.ir([cert_request()])
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    spki = inbound.requests[0].popo.public_key
    certificate = pki().issue(load_der_public_key(spki), name("u"))  # type: ignore[arg-type]
    ip = engine.respond(inbound, [Issue(certificate)])
    error_body = client.error(FailInfo.badCertId, "bad").request["body"]
    reported = engine.receive(Crafter(clock).follow_up(ip, error_body))
    assert type(reported).__name__ == "ErrorReported"
    assert reported.unconfirmed == (certificate,)  # type: ignore[union-attr]
    # and a protocol error that ends it says so as well
    transaction = client.ir([cert_request()])
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, CertificatesRequested)
    ip = engine.respond(inbound, [Issue(certificate)])
    wrong = body("certConf", [{"certHash": b"\x01" * 32, "certReqId": 0}])
    answered = engine.receive(Crafter(clock).follow_up(ip, wrong))
    assert isinstance(answered, Answered)
    assert fail_info(answered.response) == {"badCertId"}
    assert answered.closed and answered.unconfirmed == (certificate,)


# ---- delayed rr / genm, expiry -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rr", "genm"])
def test_delayed_rr_and_genm(kind: str) -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({kind}), polls=2)
    server = make_server(ca, clock=clock)
    client = make_client(clock=clock)
    if kind == "rr":
        serial = perform(server, client.ir([cert_request()])).certificates[0].serial_number
        transaction = client.rr([RevocationSpec(pki().ca_name, serial)])
    else:
        transaction = client.genm([{"infoType": "caCerts"}])
    result = run(transaction, lambda m: exchange(server, m))
    assert transaction.phase is Phase.done
    if kind == "rr":
        assert result.statuses[0]["status"].native == "accepted"
    else:
        assert result.general_info[0]["infoType"].native == "caCerts"
    assert [c for c, _ in ca.calls].count("pollReq") == 3


def test_expiry_ends_an_unconfirmed_enrolment() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock, options=ServerOptions(transaction_timeout=timedelta(30)))
    transaction = make_client(clock=clock).ir([cert_request()])
    cert_conf = transaction.receive(exchange(server, transaction.request))
    clock.advance(30 * 86400)
    (event,) = server.expire()
    certificate = ca.issued[transaction.transaction_id][0]
    assert event.unconfirmed == (certificate,)
    assert ca.revoked == [certificate.serial_number]
    late = exchange(server, cert_conf)
    assert fail_info(late) == {"badTime"}  # a month late: messageTime is off anyway
    clock.current = clock.current  # no-op; the transaction is gone whatever the time
    assert len(server.engine.config.transactions) == 0  # type: ignore[arg-type]


# ---- POPO variants and delayed pkiconf (client engine features) ---------------------------------


def test_ra_verified_enrolment_through_the_client_engine() -> None:
    clock = FixedClock()
    server = make_server(clock=clock, options=ServerOptions(accept_raverified=True))
    spki = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    spec = CertRequestSpec(public_key=spki, subject=name("via ra"), popo="raVerified")
    transaction = make_client("ec", clock=clock).cr([spec])
    result = perform(server, transaction)
    assert transaction.phase is Phase.done
    assert result.certificates[0].subject == name("via ra")


def test_indirect_pop_gets_the_certificate_encrypted() -> None:
    clock = FixedClock()
    server = make_server(clock=clock)
    key = KEY_RSA
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    spec = CertRequestSpec(
        public_key=spki, subject=name("encrypted"), popo="encrCert", decryption_key=key
    )
    transaction = make_client(clock=clock).ir([spec])
    ip = exchange(server, transaction.request)
    chosen = ip["body"].chosen["response"][0]["certifiedKeyPair"]["certOrEncCert"]
    assert chosen.name == "encryptedCert"
    cert_conf = transaction.receive(ip)
    assert transaction.receive(exchange(server, cert_conf)) is None
    assert transaction.result.certificates[0].public_key() == key.public_key()


def test_rr_reasons_from_the_client_engine() -> None:
    clock = FixedClock()
    engine = make_server(clock=clock).engine
    transaction = make_client(clock=clock).rr(
        [RevocationSpec(pki().ca_name, 11, 1), RevocationSpec(pki().ca_name, 12)]
    )
    inbound = engine.receive(transaction.request)
    assert isinstance(inbound, RevocationRequested)
    assert inbound.reasons == (1, None)


@pytest.mark.parametrize("polls", [0, 2])
def test_delayed_pkiconf_through_the_client_engine(polls: int) -> None:
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"certConf"}), polls=polls)
    server = make_server(ca, clock=clock)
    transaction = make_client(clock=clock).ir([cert_request()])
    bodies = []
    message = transaction.request
    while message is not None:
        response = exchange(server, message)
        bodies.append(response["body"].name)
        message = transaction.receive(response)
    assert bodies == ["ip", "error"] + ["pollRep"] * polls + ["pkiconf"]
    assert transaction.phase is Phase.done
    assert ca.confirmed == [(transaction.transaction_id, 0)]


# ---- statuses chosen by the application ---------------------------------------------------------


def test_reject_with_several_failure_bits_or_none() -> None:
    clock = FixedClock()
    engine = make_server(clock=clock).engine
    inbound = engine.receive(make_client(clock=clock).ir([cert_request()]).request.dump())
    assert isinstance(inbound, CertificatesRequested)
    bits = frozenset({FailInfo.badAlg, FailInfo.badTime})
    ip = engine.respond(inbound, [Reject(bits, "two reasons")])
    status = ip["body"].chosen["response"][0]["status"]
    assert status["failInfo"].native == {"badAlg", "badTime"}
    assert status["statusString"].native == ["two reasons"]
    inbound = engine.receive(
        make_client(clock=clock, seed=b"2").ir([cert_request()]).request.dump()
    )
    assert isinstance(inbound, CertificatesRequested)
    ip = engine.respond(inbound, [Reject(None)])
    status = ip["body"].chosen["response"][0]["status"]
    assert status["status"].native == "rejection"
    assert status["failInfo"].native is None


def test_issue_and_revoked_carry_the_application_s_status_info() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    engine = make_server(ca, clock=clock).engine
    transaction = make_client(clock=clock).ir([cert_request()])
    inbound = engine.receive(transaction.request.dump())
    assert isinstance(inbound, CertificatesRequested)
    certificate = ca.pki.issue(
        load_der_public_key(inbound.requests[0].popo.public_key or b""), name("x")
    )
    warning = status_info("keyUpdateWarning", FailInfo.badTime, "renew soon")
    ip = engine.respond(inbound, [Issue(certificate, status_info=warning)])
    (response,) = ip["body"].chosen["response"]
    assert response["status"].dump() == warning.dump()
    assert response["certifiedKeyPair"].native is not None
    inbound = engine.receive(
        Crafter(clock).message(body("rr", [{"certDetails": {"serialNumber": 9}}])).dump()
    )
    assert isinstance(inbound, RevocationRequested)
    notice = status_info("revocationNotification", text="done")
    rp = engine.respond(inbound, [Revoked(status_info=notice)])
    assert rp["body"].chosen["status"][0].dump() == notice.dump()


def test_issue_with_a_negative_status_info_is_a_system_failure() -> None:
    clock = FixedClock()
    ca = IssuingCA()
    server = make_server(ca, clock=clock)
    inbound = server.engine.receive(make_client(clock=clock).ir([cert_request()]).request.dump())
    assert isinstance(inbound, CertificatesRequested)
    spki = load_der_public_key(inbound.requests[0].popo.public_key or b"")
    certificate = ca.pki.issue(spki, name("x"))
    waiting = Issue(certificate, status_info=status_info("waiting"))
    answer = server.engine.respond(inbound, [waiting])
    assert fail_info(answer) == {"systemFailure"}
    assert "use Reject or Defer" in answer["body"].chosen["errorDetails"].native[0]
