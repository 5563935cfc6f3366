"""The transaction FSM as data: the table is complete and the one shared Machine obeys it.

Part one checks `ROUTES` and `TRANSITIONS` themselves, exhaustively with hypothesis. Part two
drives the real engine into every state and sends every kind of message, checking that what the
engine does is what the table says (the answer's failInfo, whether the transaction survives).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asn1crypto.core import Null
from cmp_pki import (
    Crafter,
    FixedClock,
    IssuingCA,
    body,
    cert_request,
    exchange,
    fail_info,
    make_client,
    make_server,
    pki,
    tid_of,
)
from hypothesis import given
from hypothesis import strategies as st

from sanscmp.engine import fsm
from sanscmp.engine.asn1 import BODY_TYPES
from sanscmp.engine.client import RevocationSpec
from sanscmp.engine.errors import CmpError, FailInfo
from sanscmp.engine.fsm import (
    KIND_OF_BODY,
    MACHINE,
    ROUTES,
    TRANSITIONS,
    Dispatch,
    IllegalTransition,
    MessageKind,
    Refuse,
    State,
    Trigger,
    fire,
    permits,
    route,
)
from sanscmp.engine.transaction import Transaction

STATES: list[State | None] = [None, *State]
DEST: dict[tuple[State, Trigger], State] = {}
for row in TRANSITIONS:
    sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
    for source in sources:
        DEST[(State(source), Trigger(row["trigger"]))] = State(row["dest"])  # type: ignore[arg-type]


def record(state: State) -> Transaction:
    return Transaction(b"t" * 16, b"client", "ir", 2, datetime(2030, 1, 1, tzinfo=UTC), state)


# ---- the table --------------------------------------------------------------------------------


def test_every_state_and_message_kind_has_a_route() -> None:
    assert set(ROUTES) == {(state, kind) for state in STATES for kind in MessageKind}


def test_every_body_type_maps_to_a_kind() -> None:
    for name in BODY_TYPES:
        expected = KIND_OF_BODY.get(name, MessageKind.other)
        assert route(State.polling, name) is ROUTES[(State.polling, expected)]
    assert route(None, "no such body") is ROUTES[(None, MessageKind.other)]


def test_dispatched_triggers_are_legal_from_their_state() -> None:
    for (state, _kind), step in ROUTES.items():
        if isinstance(step, Dispatch):
            # no transaction, or a closed one: the message starts a new transaction
            source = State.idle if state in (None, State.closed) else state
            assert step.triggers, (state, _kind)
            for trigger in step.triggers | {Trigger.fail}:
                assert (source, trigger) in DEST, (state, _kind, trigger)


def test_refusals_name_an_error_of_the_hierarchy() -> None:
    for step in ROUTES.values():
        if isinstance(step, Refuse):
            assert issubclass(step.error, CmpError)
            assert isinstance(step.error.fail_info, FailInfo)
            assert step.text


def test_closed_and_idle_answer_like_no_transaction() -> None:
    for kind in MessageKind:
        assert ROUTES[(State.closed, kind)] is ROUTES[(None, kind)]
        assert ROUTES[(State.idle, kind)] is ROUTES[(None, kind)]


def test_new_requests_for_a_live_id_are_refused_without_closing() -> None:
    for state in (State.waiting_certConf, State.polling):
        for kind in (MessageKind.cert_request, MessageKind.rr, MessageKind.genm):
            step = ROUTES[(state, kind)]
            assert isinstance(step, Refuse)
            assert step.error.fail_info is FailInfo.transactionIdInUse
            assert not step.closes


@given(st.sampled_from(STATES), st.sampled_from(sorted(BODY_TYPES)), st.sampled_from(list(Trigger)))
def test_permits_agrees_with_the_table(
    state: State | None, body_name: str, trigger: Trigger
) -> None:
    step = route(state, body_name)
    allowed = permits(state or State.idle, body_name, trigger)
    if isinstance(step, Refuse):
        assert not allowed
    else:
        assert allowed == (trigger in step.triggers or trigger is Trigger.fail)


@given(st.sampled_from(list(State)), st.sampled_from(list(Trigger)))
def test_a_trigger_lands_in_its_destination_or_raises(state: State, trigger: Trigger) -> None:
    transaction = record(state)
    if (state, trigger) in DEST:
        fire(transaction, trigger)
        assert transaction.state == DEST[(state, trigger)]
    else:
        with pytest.raises(IllegalTransition) as raised:
            fire(transaction, trigger)
        assert raised.value.fail_info is FailInfo.systemFailure
        assert transaction.state == state  # an illegal move changes nothing


@given(st.lists(st.sampled_from(list(Trigger)), max_size=12))
def test_closed_is_final(triggers: list[Trigger]) -> None:
    transaction = record(State.idle)
    for trigger in triggers:
        before = transaction.state
        try:
            fire(transaction, trigger)
        except IllegalTransition:
            assert transaction.state == before
        if before == State.closed:
            assert transaction.state == State.closed
    assert transaction.state in set(State)


def test_one_shared_machine_and_no_attached_models() -> None:
    fire(record(State.idle), Trigger.grant)
    assert fsm.MACHINE is MACHINE
    assert MACHINE.models == []
    assert MACHINE.get_triggers(State.closed) == []


# ---- the engine follows the table -------------------------------------------------------------


def _prepare(state: State | None):  # type: ignore[no-untyped-def]
    """A server, a crafter, and the last server response of a transaction now in `state`."""
    clock = FixedClock()
    ca = IssuingCA(defer_kinds=frozenset({"cert"}), polls=100)
    server = make_server(ca, clock=clock)
    if state is None:
        return server, Crafter(clock), None, None
    if state == State.polling:
        client = make_client(clock=clock, seed=b"fsm")
    else:
        ca.defer_kinds = frozenset()
        client = make_client(clock=clock, seed=b"fsm")
    transaction = client.ir([cert_request()])
    response = exchange(server, transaction.request)
    follow = transaction.receive(response)  # pollReq or certConf, not sent
    assert server.get0_cmp_ctx().state == state
    return server, Crafter(clock), response, follow


def _body_of(kind: MessageKind, follow) -> object:  # type: ignore[no-untyped-def]
    client = make_client(seed=b"bodies")
    if kind is MessageKind.cert_request:
        return client.ir([cert_request()]).request["body"]
    if kind is MessageKind.rr:
        return client.rr([RevocationSpec(pki().ca_name, 12345)]).request["body"]
    if kind is MessageKind.genm:
        return body("genm", [{"infoType": "caCerts"}])
    if kind is MessageKind.error:
        return client.error(FailInfo.badRequest, "client trouble").request["body"]
    if kind is MessageKind.certConf:
        if follow is not None and follow["body"].name == "certConf":
            return follow["body"]
        return body("certConf", [{"certHash": b"\x00" * 32, "certReqId": 0}])
    if kind is MessageKind.pollReq:
        return body("pollReq", [{"certReqId": 0}])
    return body("pkiconf", Null())


EXPECTED_BODY = {
    MessageKind.cert_request: "ip",
    MessageKind.rr: "rp",
    MessageKind.genm: "genp",
    MessageKind.error: "pkiconf",
    MessageKind.certConf: "pkiconf",
    MessageKind.pollReq: "pollRep",
}


@pytest.mark.parametrize("kind", list(MessageKind), ids=str)
@pytest.mark.parametrize("state", [None, State.waiting_certConf, State.polling], ids=str)
def test_engine_answers_every_state_and_kind_as_the_table_says(
    state: State | None, kind: MessageKind
) -> None:
    server, crafter, response, follow = _prepare(state)
    request_body = _body_of(kind, follow)
    if response is None:
        request = crafter.message(request_body)  # type: ignore[arg-type]
    else:
        request = crafter.follow_up(response, request_body)  # type: ignore[arg-type]
        # the crafted message must come from the same client as the transaction: client-1's MAC
    answer = exchange(server, request)
    step = ROUTES[(state, kind)]
    live = {t.transaction_id for t in server.engine.config.transactions}  # type: ignore[attr-defined]
    if isinstance(step, Refuse):
        assert fail_info(answer) == {step.error.fail_info.name}
        if state is not None:
            assert (tid_of(request) in live) == (not step.closes)
            assert server.transaction_closed == step.closes
    else:
        assert answer["body"].name == EXPECTED_BODY[kind], fail_info(answer)
        if state is not None:
            assert answer["header"]["recipNonce"].native == request["header"]["senderNonce"].native
