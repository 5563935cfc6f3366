"""A hypothesis state machine interleaving many transactions of several clients against one server.

Rules start ir/cr/p10cr/rr/genm transactions (deferred or not, asking for implicit confirmation or
not), continue them message by message, replay old messages, send follow-ups with someone else's
transactionID or a live transactionID in a new request, poke transactions already ended, send
garbage, and let time pass (expiring transactions). After every step the invariants hold:

- the store holds exactly the transactions our model says are live, each still owned by the
  client that started it (no two live transactions share an ID, none was taken over);
- every response's recipNonce is its request's senderNonce (and its transactionID the request's);
- nothing moves after a transaction ended: later messages for it are refused, it stays gone;
- every certificate confirmed was issued in that same transaction (certHash and certReqId);
- refusals that must not touch a live transaction leave it exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cmp_pki import (
    Crafter,
    FixedClock,
    IssuingCA,
    body,
    cert_request,
    csr_der,
    fail_info,
    make_client,
    make_server,
    name,
    pki,
)
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)

from sanscmp.engine.asn1 import PKIMessage
from sanscmp.engine.certhash import cert_hash
from sanscmp.engine.client import ClientEngine, ClientTransaction, RevocationSpec
from sanscmp.engine.errors import FailInfo
from sanscmp.engine.events import Defer
from sanscmp.engine.handlers import CmpServer
from sanscmp.engine.protection import MacCredential, PbmScheme, SignatureCredential
from sanscmp.engine.server import ServerOptions

TIMEOUT = 120  # seconds of inactivity before a transaction expires
CLIENTS = ("mac1", "mac2", "ec")
FAST_PBM = PbmScheme(iterations=200)
KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)]  # keygen is not the point


class PlannedCA(IssuingCA):
    """Defers exactly the transactions planned to be deferred, for their planned number of polls,
    and checks each certConf entry against what it issued in that transaction."""

    def __init__(self) -> None:
        super().__init__(check_after=1)
        self.plan: dict[bytes, int] = {}  # tid -> pollReqs answered with pollRep

    def _defer(self, request: PKIMessage, kind: str) -> Defer | None:
        tid = request["header"]["transactionID"].native
        if tid not in self.plan or (tid, "any") in self._deferred:
            return None
        self._deferred.add((tid, "any"))
        self._remaining[tid] = self.plan[tid]
        return Defer(self.check_after)

    def process_certConf(self, server: CmpServer, request: PKIMessage, *args: Any) -> Any:
        tid = request["header"]["transactionID"].native
        cert_req_id, digest = args[0], args[1]
        issued = self.issued.get(tid, {})
        assert cert_req_id in issued, "certConf for a certificate not issued in this transaction"
        assert digest == cert_hash(issued[cert_req_id].public_bytes(Encoding.DER))
        return super().process_certConf(server, request, *args)


@dataclass
class Tracked:
    """A client transaction as the model sees it."""

    owner: str
    transaction: ClientTransaction
    body_type: str
    sent: list[PKIMessage] = field(default_factory=list)
    last_response: PKIMessage | None = None
    next_message: PKIMessage | None = None
    last_activity: datetime | None = None
    ended: bool = False

    @property
    def tid(self) -> bytes:
        return self.transaction.transaction_id

    def __repr__(self) -> str:
        return f"<{self.owner} {self.body_type} {self.tid.hex()[:8]} sent {len(self.sent)}>"


class ServerMachine(RuleBasedStateMachine):
    live = Bundle("live")
    ended = Bundle("ended")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock()
        self.ca = PlannedCA()
        self.server = make_server(
            self.ca,
            clock=self.clock,
            options=ServerOptions(
                grant_implicit_confirm=True, transaction_timeout=timedelta(seconds=TIMEOUT)
            ),
        )
        self.clients: dict[str, ClientEngine] = {}
        for index, kind in enumerate(CLIENTS):
            client = make_client(
                "ec" if kind == "ec" else "mac",
                clock=self.clock,
                seed=f"stateful {kind}",
                reference=b"client-2" if kind == "mac2" else b"client-1",
            )
            if kind != "ec":
                credential = client.config.credential
                assert isinstance(credential, MacCredential)
                client.config.credential = MacCredential(
                    credential.reference, credential.secret, FAST_PBM
                )
            assert index >= 0
            self.clients[kind] = client
        self.crafters = {
            "mac1": Crafter(
                self.clock,
                credential=MacCredential(b"client-1", pki().secrets[b"client-1"], FAST_PBM),
            ),
            "mac2": Crafter(
                self.clock,
                credential=MacCredential(b"client-2", pki().secrets[b"client-2"], FAST_PBM),
            ),
            "ec": Crafter(
                self.clock,
                credential=SignatureCredential(
                    pki().clients["ec"].key, pki().clients["ec"].certificate
                ),
            ),
        }
        self.model: dict[bytes, Tracked] = {}  # live transactions
        self.serials: list[int] = []

    # ---- plumbing ---------------------------------------------------------------------------

    def send(self, request: PKIMessage | bytes) -> PKIMessage:
        """One request through the server; checks the response echoes the request's header."""
        raw = request if isinstance(request, bytes) else request.dump()
        response = PKIMessage.load(self.server.process_request(raw).dump())
        if isinstance(request, PKIMessage):
            asked, answered = request["header"], response["header"]
            assert answered["recipNonce"].native == asked["senderNonce"].native
            assert answered["transactionID"].native == asked["transactionID"].native
        return response

    def store(self) -> dict[bytes, Any]:
        return {t.transaction_id: t for t in self.server.engine.config.transactions}  # type: ignore[attr-defined]

    def advance(self, tracked: Tracked, message: PKIMessage) -> None:
        tracked.sent.append(message)
        response = self.send(message)
        tracked.last_response = response
        tracked.last_activity = self.clock.now()
        try:
            tracked.next_message = tracked.transaction.receive(response)
        except Exception:  # the client refused the response: it would report and stop
            tracked.next_message = None
        event(f"answered {message['body'].name} with {response['body'].name}")
        if tracked.next_message is None:
            tracked.ended = True
            self.model.pop(tracked.tid, None)
            assert self.server.transaction_closed
        else:
            self.model[tracked.tid] = tracked
            assert not self.server.transaction_closed
        for certificates in self.ca.issued.values():
            self.serials.extend(c.serial_number for c in certificates.values())

    # ---- rules ------------------------------------------------------------------------------

    @rule(
        target=live,
        owner=st.sampled_from(CLIENTS),
        kind=st.sampled_from(["ir", "cr", "p10cr", "rr", "genm"]),
        polls=st.none() | st.integers(0, 2),
        implicit=st.booleans(),
        entries=st.integers(1, 2),
    )
    def start(
        self, owner: str, kind: str, polls: int | None, implicit: bool, entries: int
    ) -> Tracked:
        client = self.clients[owner]
        client.config.implicit_confirm = implicit
        if kind in ("ir", "cr"):
            transaction = getattr(client, kind)([cert_request(key=KEYS[i]) for i in range(entries)])
        elif kind == "p10cr":
            transaction = client.p10cr(csr_der(KEYS[0], name("p10")))
        elif kind == "rr":
            serials = (self.serials or [1])[-entries:]
            transaction = client.rr([RevocationSpec(pki().ca_name, s) for s in serials])
        else:
            transaction = client.genm([{"infoType": "caCerts"}])
        tracked = Tracked(owner, transaction, kind)
        if polls is not None:
            self.ca.plan[tracked.tid] = polls
        assert tracked.tid not in self.store()
        self.advance(tracked, transaction.request)
        return tracked

    @rule(tracked=consumes(live))
    def finish(self, tracked: Tracked) -> None:
        """Drive a transaction to its end (or leave it if it ended or expired meanwhile)."""
        while not tracked.ended and tracked.next_message is not None:
            if tracked.tid not in self.model:
                return
            self.advance(tracked, tracked.next_message)

    @rule(tracked=live)
    def step(self, tracked: Tracked) -> None:
        if tracked.tid in self.model and tracked.next_message is not None:
            self.advance(tracked, tracked.next_message)

    @rule(tracked=live, which=st.integers(0, 10))
    def replay(self, tracked: Tracked, which: int) -> None:
        """A message sent before, sent again byte for byte: refused, nothing changes."""
        if not tracked.sent:
            return
        before = self.store()
        answer = self.send(tracked.sent[which % len(tracked.sent)])
        assert fail_info(answer) & {"badSenderNonce", "badTime"}, fail_info(answer)
        assert self.store() == before
        event(f"replay refused: {sorted(fail_info(answer))}")

    @rule(
        tracked=live,
        intruder=st.sampled_from(CLIENTS),
        what=st.sampled_from(["pollReq", "certConf", "genm"]),
    )
    def foreign(self, tracked: Tracked, intruder: str, what: str) -> None:
        """Someone else's message on this transactionID (or the owner's new request on it)."""
        if tracked.tid not in self.model or tracked.last_response is None:
            return
        before = self.store()
        bodies = {
            "pollReq": body("pollReq", [{"certReqId": 0}]),
            "certConf": body("certConf", [{"certHash": bytes(32), "certReqId": 0}]),
            "genm": body("genm", []),
        }
        if intruder == tracked.owner:
            if what != "genm":
                return  # the owner's follow-ups are ordinary protocol errors, not this rule's
            expected = {"transactionIdInUse"}
        else:
            expected = {"notAuthorized"}
        message = self.crafters[intruder].follow_up(tracked.last_response, bodies[what])
        answer = self.send(message)
        assert fail_info(answer) == expected
        assert self.store() == before
        assert not self.server.transaction_closed
        event(f"foreign refused: {sorted(expected)}")

    @rule(target=ended, tracked=consumes(live))
    def abandon_with_error(self, tracked: Tracked) -> Tracked:
        """The owner reports an error inside its transaction: pkiconf, and it is over."""
        if tracked.tid in self.model and tracked.last_response is not None:
            crafted = self.crafters[tracked.owner].follow_up(
                tracked.last_response,
                self.clients[tracked.owner].error(FailInfo.badCertId).request["body"],
            )
            assert self.send(crafted)["body"].name == "pkiconf"
            assert self.server.transaction_closed
            self.model.pop(tracked.tid)
            tracked.ended = True
        return tracked

    @rule(target=ended, tracked=consumes(live))
    def retire(self, tracked: Tracked) -> Tracked:
        """Stop following this transaction actively; it may still be live in the server."""
        return tracked

    @rule(tracked=ended)
    def poke_ended(self, tracked: Tracked) -> None:
        """A fresh follow-up for a transaction that ended: refused, and it stays ended."""
        if tracked.tid in self.model or tracked.last_response is None:
            return
        before = self.store()
        message = self.crafters[tracked.owner].follow_up(
            tracked.last_response, body("pollReq", [{"certReqId": 0}])
        )
        answer = self.send(message)
        assert answer["body"].name == "error"
        event("poked an ended transaction")
        assert tracked.tid not in self.store()
        assert self.store() == before

    @rule(data=st.binary(max_size=40))
    def garbage(self, data: bytes) -> None:
        before = self.store()
        answer = self.send(data)
        assert fail_info(answer) == {"badDataFormat"}
        assert self.store() == before

    @rule(seconds=st.integers(1, 2 * TIMEOUT))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        now = self.clock.now()
        due = {
            tid
            for tid, tracked in self.model.items()
            if tracked.last_activity is not None
            and tracked.last_activity + timedelta(seconds=TIMEOUT) <= now
        }
        events = self.server.expire()
        assert {expired.transaction_id for expired in events} == due
        if events:
            event(f"expired in {sorted({e.state for e in events})}")
        for expired in events:
            issued = self.ca.issued.get(expired.transaction_id, {})
            if expired.state == "waiting_certConf":
                assert {c.serial_number for c in expired.unconfirmed} <= {
                    c.serial_number for c in issued.values()
                }
                assert expired.unconfirmed
            self.model.pop(expired.transaction_id).ended = True
        assert set(self.ca.cleaned) >= due

    # ---- invariants ---------------------------------------------------------------------------

    @invariant()
    def store_holds_exactly_the_live_transactions(self) -> None:
        store = self.store()
        assert set(store) == set(self.model)
        for tid, record in store.items():
            tracked = self.model[tid]
            assert record.request_type == tracked.body_type
            assert record.state in ("waiting_certConf", "polling")
            owner = self.clients[tracked.owner].config.credential
            if isinstance(owner, MacCredential):
                assert record.client == b"kid:" + owner.reference  # type: ignore[operator]
            else:
                assert record.client.startswith(b"cert:")

    @invariant()
    def confirmed_certificates_come_from_their_transaction(self) -> None:
        for tid, cert_req_id in self.ca.confirmed:
            assert cert_req_id in self.ca.issued[tid]

    @invariant()
    def nothing_issued_twice(self) -> None:
        serials = [c.serial_number for certs in self.ca.issued.values() for c in certs.values()]
        assert len(serials) == len(set(serials))


ServerMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestServerMachine = ServerMachine.TestCase
