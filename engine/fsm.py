"""The CMP transaction state machine, declared as data, and the one shared `transitions.Machine`.

States follow the life of a transaction on the server (RFC 9810 5.3.19, 5.3.22; RFC 9483 4.4):

    idle --cert request granted, implicitConfirm granted----------------> closed
    idle --cert request granted-------------> waiting_certConf --certConf--> closed
    idle --request deferred (waiting)--> polling --pollReq, still waiting--> polling
                                         polling --pollReq, ready--> waiting_certConf | closed
    idle --rr / genm / error answered------------------------------------> closed
    any  --rejection, client error, protocol error, expiry---------------> closed

`ROUTES` defines, for every (state, message type) pair, whether the message is dispatched to the
application and which triggers may follow, or which error answers it. Records are never attached to
the Machine: events are triggered on them directly, so a transaction costs no Machine bookkeeping.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from transitions import Machine, MachineError

from .errors import BadRequest, CmpError, FailInfo, TransactionIdInUse


class State(enum.StrEnum):
    """Where a transaction stands."""

    idle = "idle"
    waiting_certConf = "waiting_certConf"
    polling = "polling"
    closed = "closed"


class Trigger(enum.StrEnum):
    """What may happen to a transaction; each is one row of `TRANSITIONS`."""

    grant = "grant"  # certificates issued, certConf expected
    grant_implicit = "grant_implicit"  # certificates issued, implicit confirmation granted
    answer = "answer"  # final answer to rr / genm / error / certConf, or a rejection
    defer = "defer"  # status waiting: the client must poll
    confirm = "confirm"  # certConf accepted (or rejected by the client): done
    abort = "abort"  # the client sent an error message: the transaction ends
    fail = "fail"  # protocol error inside the transaction
    expire = "expire"  # the transaction timed out


_LIVE = [State.idle, State.waiting_certConf, State.polling]
_DECIDING = [State.idle, State.polling]  # a request (or pollReq) awaits the application's decision

TRANSITIONS: list[dict[str, object]] = [
    {"trigger": Trigger.grant, "source": _DECIDING, "dest": State.waiting_certConf},
    {"trigger": Trigger.grant_implicit, "source": _DECIDING, "dest": State.closed},
    {"trigger": Trigger.answer, "source": _DECIDING, "dest": State.closed},
    {"trigger": Trigger.defer, "source": _LIVE, "dest": State.polling},
    {"trigger": Trigger.confirm, "source": State.waiting_certConf, "dest": State.closed},
    {"trigger": Trigger.abort, "source": _LIVE, "dest": State.closed},
    {"trigger": Trigger.fail, "source": _LIVE, "dest": State.closed},
    {"trigger": Trigger.expire, "source": _LIVE, "dest": State.closed},
]


class MessageKind(enum.StrEnum):
    """Request body types as the server sees them; all other bodies are `other`."""

    cert_request = "cert_request"  # ir, cr, kur, p10cr
    rr = "rr"
    genm = "genm"
    error = "error"
    certConf = "certConf"
    pollReq = "pollReq"
    other = "other"  # responses, announcements, krr, ccr, nested: not served


KIND_OF_BODY: dict[str, MessageKind] = {
    "ir": MessageKind.cert_request,
    "cr": MessageKind.cert_request,
    "kur": MessageKind.cert_request,
    "p10cr": MessageKind.cert_request,
    "rr": MessageKind.rr,
    "genm": MessageKind.genm,
    "error": MessageKind.error,
    "certConf": MessageKind.certConf,
    "pollReq": MessageKind.pollReq,
}

_DECIDED = frozenset({Trigger.grant, Trigger.grant_implicit, Trigger.answer, Trigger.defer})
_ABORTED = frozenset({Trigger.abort})


@dataclass(frozen=True)
class Dispatch:
    """The message goes to the application; afterwards one of `triggers` fires."""

    triggers: frozenset[Trigger]


@dataclass(frozen=True)
class Refuse:
    """The message is answered with an error; `closes` says whether the transaction ends."""

    error: type[CmpError]
    text: str
    closes: bool


def _in_use(kind: str) -> Refuse:
    """A new request reusing a live ID is refused; the live transaction itself is left alone."""
    return Refuse(TransactionIdInUse, f"{kind} reuses the ID of a live transaction", False)


# Every (state, message kind) pair. `None` as the state stands for "no transaction with this ID".
ROUTES: dict[tuple[State | None, MessageKind], Dispatch | Refuse] = {
    (None, MessageKind.cert_request): Dispatch(_DECIDED),
    (None, MessageKind.rr): Dispatch(_DECIDED),
    (None, MessageKind.genm): Dispatch(_DECIDED),
    (None, MessageKind.error): Dispatch(frozenset({Trigger.answer})),
    (None, MessageKind.certConf): Refuse(BadRequest, "certConf for an unknown transaction", True),
    (None, MessageKind.pollReq): Refuse(BadRequest, "pollReq for an unknown transaction", True),
    (None, MessageKind.other): Refuse(BadRequest, "message type not served", True),
    (State.waiting_certConf, MessageKind.cert_request): _in_use("certificate request"),
    (State.waiting_certConf, MessageKind.rr): _in_use("rr"),
    (State.waiting_certConf, MessageKind.genm): _in_use("genm"),
    (State.waiting_certConf, MessageKind.error): Dispatch(_ABORTED),
    (State.waiting_certConf, MessageKind.certConf): Dispatch(
        frozenset({Trigger.confirm, Trigger.defer})
    ),
    (State.waiting_certConf, MessageKind.pollReq): Refuse(
        BadRequest, "pollReq but the transaction is waiting for certConf", True
    ),
    (State.waiting_certConf, MessageKind.other): Refuse(
        BadRequest, "unexpected message type while waiting for certConf", True
    ),
    (State.polling, MessageKind.cert_request): _in_use("certificate request"),
    (State.polling, MessageKind.rr): _in_use("rr"),
    (State.polling, MessageKind.genm): _in_use("genm"),
    (State.polling, MessageKind.error): Dispatch(_ABORTED),
    (State.polling, MessageKind.certConf): Refuse(
        BadRequest, "certConf but the transaction is still polling", True
    ),
    (State.polling, MessageKind.pollReq): Dispatch(_DECIDED),
    (State.polling, MessageKind.other): Refuse(
        BadRequest, "unexpected message type while polling", True
    ),
}
# `idle` is a transaction's state only while its first request is being decided; a stored
# transaction is never idle. `closed` ones are deleted. Both answer like "no such transaction".
for _kind in MessageKind:
    ROUTES[(State.idle, _kind)] = ROUTES[(None, _kind)]
    ROUTES[(State.closed, _kind)] = ROUTES[(None, _kind)]


class HasState(Protocol):
    """Anything with a `state` attribute can ride the machine (the transaction record does)."""

    state: str


MACHINE = Machine(
    model=None,
    states=list(State),
    transitions=TRANSITIONS,
    initial=State.idle,
    auto_transitions=False,
    model_attribute="state",
)


def route(state: State | None, body_name: str) -> Dispatch | Refuse:
    """What to do with a message of `body_name` arriving for a transaction in `state`."""
    return ROUTES[(state, KIND_OF_BODY.get(body_name, MessageKind.other))]


def permits(state: State, body_name: str, trigger: Trigger) -> bool:
    """Whether answering a `body_name` message in `state` may fire `trigger`: one of the route's
    triggers, or `fail` (a protocol error may end any dispatched request)."""
    step = route(state, body_name)
    return isinstance(step, Dispatch) and (trigger in step.triggers or trigger is Trigger.fail)


def fire(record: HasState, trigger: Trigger) -> None:
    """Move `record` along `trigger`; an illegal move is a server bug surfaced as systemFailure."""
    try:
        MACHINE.events[trigger].trigger(record)
    except MachineError as exc:
        raise IllegalTransition(f"{trigger} not allowed from {record.state}: {exc.value}") from None


class IllegalTransition(CmpError):
    """The engine tried a move the table forbids: an internal error, never the client's fault."""

    fail_info = FailInfo.systemFailure
