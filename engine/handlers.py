"""The OpenSSL-style facade: six per-message callbacks over the event API (OSSL_CMP_SRV_CTX_init).

`CmpServer` mirrors OSSL_CMP_SRV_CTX: construct it (OSSL_CMP_SRV_CTX_new), `init` the custom context
and callbacks, set the four options, `process_request`; a callback left out means that message type
is unsupported. Unlike OpenSSL, every CertReqMsg / RevDetails / CertStatus of a message is handed to
its callback in turn and answered in one response.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto.csr import CertificationRequest
from asn1crypto.x509 import Name

from .asn1 import CertReqMsg, InfoTypeAndValue, PKIFreeText, PKIMessage, PKIStatusInfo
from .errors import BadRequest, FailInfo, SystemUnavail
from .events import (
    Acknowledge,
    CertDecision,
    CertificatesConfirmed,
    CertificatesRequested,
    Decision,
    Defer,
    ErrorReported,
    GeneralMessageReceived,
    GeneralResponse,
    Inbound,
    PollReceived,
    Reject,
    RevDecision,
    RevocationRequested,
    TransactionExpired,
)
from .serve import serve
from .server import ProtocolContext, ServerConfig, ServerEngine

CertRequestHandler = Callable[
    ["CmpServer", PKIMessage, int, CertReqMsg | None, CertificationRequest | None],
    CertDecision | Defer,
]
"""(server, request, certReqId, crm, p10cr) -> Issue | Reject | Defer, per certificate request.

Any Defer defers the whole message. As in OpenSSL, when the pollReq handler says "ready" the
deferred request is handed to this handler again: it must then give its final answer (and issue
nothing twice for the same transactionID and certReqId)."""

RrHandler = Callable[["CmpServer", PKIMessage, Name | None, int | None], RevDecision | Defer]
"""(server, request, issuer, serialNumber) -> Revoked | Reject | Defer, per RevDetails."""

GenmHandler = Callable[
    ["CmpServer", PKIMessage, Sequence[InfoTypeAndValue]],
    Sequence[InfoTypeAndValue] | Reject | Defer,
]
"""(server, request, itavs) -> the genp's itavs | Reject | Defer."""

ErrorHandler = Callable[
    ["CmpServer", PKIMessage, PKIStatusInfo, int | None, PKIFreeText | None], None
]
"""(server, request, statusInfo, errorCode, errorDetails): the client reported an error."""

CertConfHandler = Callable[
    ["CmpServer", PKIMessage, int, bytes, PKIStatusInfo | None], bool | Defer
]
"""(server, request, certReqId, certHash, statusInfo) -> accepted?, per CertStatus."""

PollReqHandler = Callable[["CmpServer", PKIMessage, int], tuple[bool, int]]
"""(server, pollReq, certReqId) -> (ready, checkAfter); ready: decide the deferred request now."""

CleanHandler = Callable[["CmpServer", bytes], None]
"""(server, transactionID): the transaction ended (answered, refused with an error, or expired);
drop what you kept for it, e.g. revoke certificates issued in it that were never confirmed."""

ExpiredHandler = Callable[["CmpServer", TransactionExpired], None]
"""(server, event): a transaction timed out, e.g. revoke `event.unconfirmed` certificates."""


@dataclass
class Handlers:
    """The callbacks of OSSL_CMP_SRV_CTX_init, plus the clean-transaction and expiry hooks."""

    process_cert_request: CertRequestHandler | None = None
    process_rr: RrHandler | None = None
    process_genm: GenmHandler | None = None
    process_error: ErrorHandler | None = None
    process_certConf: CertConfHandler | None = None
    process_pollReq: PollReqHandler | None = None
    clean_transaction: CleanHandler | None = None
    transaction_expired: ExpiredHandler | None = None


class CmpServer:
    """OSSL_CMP_SRV_CTX: a server engine driven by callbacks instead of events."""

    def __init__(self, config: ServerConfig) -> None:
        """OSSL_CMP_SRV_CTX_new: a server with no callbacks (everything unsupported) yet."""
        self.engine = ServerEngine(config)
        self.handlers = Handlers()
        self.custom_ctx: Any = None
        self.closed = False

    def init(self, custom_ctx: Any = None, handlers: Handlers | None = None) -> None:
        """OSSL_CMP_SRV_CTX_init: set the application's context and its callbacks."""
        self.custom_ctx = custom_ctx
        self.handlers = handlers or Handlers()

    def close(self) -> None:
        """OSSL_CMP_SRV_CTX_free: end every open transaction (running the expiry and clean hooks);
        afterwards every request is answered with systemUnavail."""
        self.closed = True
        for ended in self.engine.expire(everything=True):
            self._expired(ended)

    # ---- accessors and options ---------------------------------------------------------------

    def get0_cmp_ctx(self) -> ProtocolContext:
        """The protocol context: transaction ID, state and messages of the last request."""
        return self.engine.context

    def get0_custom_ctx(self) -> Any:
        """The application's own context given to `init`."""
        return self.custom_ctx

    def set_send_unprotected_errors(self, value: bool) -> None:
        """Send error messages and other negative answers unprotected."""
        self.engine.options.send_unprotected_errors = value

    def set_accept_unprotected(self, value: bool) -> None:
        """Accept requests without protection or with invalid protection."""
        self.engine.options.accept_unprotected = value

    def set_accept_raverified(self, value: bool) -> None:
        """Accept ir/cr/kur with POPO raVerified."""
        self.engine.options.accept_raverified = value

    def set_grant_implicit_confirm(self, value: bool) -> None:
        """Grant implicit confirmation of newly enrolled certificates when asked for."""
        self.engine.options.grant_implicit_confirm = value

    @property
    def transaction_closed(self) -> bool:
        """Whether the last `process_request` closed its transaction (OpenSSL: status -1)."""
        return self.engine.transaction_closed

    # ---- processing --------------------------------------------------------------------------

    def process_request(self, request: bytes | PKIMessage) -> PKIMessage:
        """OSSL_CMP_SRV_process_request: generic checks, the callbacks, the response.

        Whenever the response ends its transaction (normally or with an error) the clean hook
        runs with its transactionID; a refusal that leaves a live transaction alone does not.
        """
        if self.closed:
            return self.engine.error_response(request, SystemUnavail("the server is shut down"))
        response = serve(self.engine, request, self._decide)
        context = self.engine.context
        if context.closed and context.transaction_id and self.handlers.clean_transaction:
            self.handlers.clean_transaction(self, context.transaction_id)
        return response

    def expire(self) -> list[TransactionExpired]:
        """End timed-out transactions, running the expiry and clean hooks for each."""
        ended = self.engine.expire()
        for event in ended:
            self._expired(event)
        return ended

    def _expired(self, event: TransactionExpired) -> None:
        if self.handlers.transaction_expired is not None:
            self.handlers.transaction_expired(self, event)
        if self.handlers.clean_transaction is not None:
            self.handlers.clean_transaction(self, event.transaction_id)

    def _decide(self, inbound: Inbound) -> Decision:
        if isinstance(inbound, PollReceived):
            return self._poll(inbound)
        if isinstance(inbound, CertificatesRequested):
            return self._cert_requests(inbound)
        if isinstance(inbound, RevocationRequested):
            return self._revocations(inbound)
        if isinstance(inbound, GeneralMessageReceived):
            genm = _required(self.handlers.process_genm, "genm")
            answer = genm(self, inbound.message, inbound.items)
            return answer if isinstance(answer, Reject | Defer) else GeneralResponse(tuple(answer))
        if isinstance(inbound, ErrorReported):
            report = _required(self.handlers.process_error, "error")
            report(
                self,
                inbound.message,
                inbound.status_info,
                inbound.error_code,
                inbound.error_details,
            )
            return Acknowledge()
        if isinstance(inbound, CertificatesConfirmed):
            return self._confirmations(inbound)
        raise BadRequest(f"{type(inbound).__name__} not supported")

    def _cert_requests(self, inbound: CertificatesRequested) -> Decision:
        handle = _required(self.handlers.process_cert_request, inbound.body_type)
        verdicts: list[CertDecision] = []
        for request in inbound.requests:
            verdict = handle(
                self, inbound.message, request.cert_req_id, request.cert_req_msg, request.csr
            )
            if isinstance(verdict, Defer):
                return verdict
            verdicts.append(verdict)
        return verdicts

    def _revocations(self, inbound: RevocationRequested) -> Decision:
        handle = _required(self.handlers.process_rr, "rr")
        verdicts: list[RevDecision] = []
        for template in inbound.entries:
            issuer = template["issuer"] if template["issuer"].native is not None else None
            serial = template["serialNumber"].native
            verdict = handle(self, inbound.message, issuer, serial)
            if isinstance(verdict, Defer):
                return verdict
            verdicts.append(verdict)
        return verdicts

    def _confirmations(self, inbound: CertificatesConfirmed) -> Decision:
        handle = _required(self.handlers.process_certConf, "certConf")
        for status in inbound.message["body"].chosen:
            info = status["statusInfo"] if status["statusInfo"].native is not None else None
            cert_req_id = status["certReqId"].native
            verdict = handle(self, inbound.message, cert_req_id, status["certHash"].native, info)
            if isinstance(verdict, Defer):
                return verdict
            if not verdict:
                return Reject(FailInfo.badRequest, f"certConf for certReqId {cert_req_id} refused")
        return Acknowledge()

    def _poll(self, inbound: PollReceived) -> Decision:
        poll = _required(self.handlers.process_pollReq, "pollReq")
        check_after = 0
        for entry in inbound.message["body"].chosen:
            ready, check_after = poll(self, inbound.message, entry["certReqId"].native)
            if not ready:
                return Defer(check_after)
        return self._decide(inbound.original)


def _required(handler: Callable[..., Any] | None, message_type: str) -> Callable[..., Any]:
    if handler is None:
        raise BadRequest(f"{message_type} messages are not supported by this server")
    return handler
