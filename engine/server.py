"""The sans-IO CMP server engine: the counterpart of OpenSSL's OSSL_CMP_SRV_CTX and its functions.

`receive` does the generic checks (version, header, protection, replay, transaction binding, FSM
route, POPO, certHash) and reports a verified request as an event; `respond` turns the
application's decision into the protected response and moves the transaction along the FSM. Every
failure becomes a CMP error message carrying whatever of the request's header could be recovered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from asn1crypto.core import Sequence as AsnSequence
from asn1crypto.csr import CertificationRequest
from asn1crypto.x509 import GeneralName
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import Certificate, load_der_x509_certificate

from .asn1 import (
    AlgorithmIdentifier,
    CertReqMsg,
    CertResponse,
    PKIBody,
    PKIHeader,
    PKIMessage,
    recover_header,
)
from .certhash import check_cert_hash
from .checks import HeaderPolicy, check_header, check_recip_nonce, check_version, remember_nonce
from .envelope import encrypt_certificate
from .errors import (
    BadCertId,
    BadMessageCheck,
    BadRequest,
    CmpError,
    NotAuthorized,
)
from .events import (
    Acknowledge,
    CertDecision,
    CertificatesConfirmed,
    CertificatesRequested,
    ClientIdentity,
    ConfirmedCertificate,
    Decision,
    Defer,
    ErrorReported,
    GeneralMessageReceived,
    GeneralResponse,
    Inbound,
    Issue,
    PollReceived,
    Reject,
    RequestedCertificate,
    RevDecision,
    RevocationRequested,
    Revoked,
    TransactionExpired,
)
from .fsm import Dispatch, Refuse, State, Trigger, fire, route
from .popo import PopoResult, verify_p10cr, verify_popo
from .responses import (
    RESPONSE_TO,
    asn1_certificate,
    cert_rep_body,
    cert_response,
    error_body,
    genp_body,
    pkiconf_body,
    poll_rep_body,
    response_header,
    rev_rep_body,
    status_info,
)
from .store import InMemoryNonceStore, InMemoryTransactionStore, NonceStore, TransactionStore
from .transaction import Transaction

RandomBytes = Callable[[int], bytes]


class Clock(Protocol):
    """Where the engine gets the time from (the engine never reads the wall clock)."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class Authenticator(Protocol):
    """Checks a request's protection and says who sent it (see `sanscmp.engine.authentication`)."""

    def authenticate(self, message: PKIMessage, now: datetime) -> ClientIdentity:
        """The verified sender; `protection == "none"` for an unprotected message. Raises
        `CmpError` (badMessageCheck, signerNotTrusted, ...) for protection that fails."""
        ...

    def protect(self, message: PKIMessage, client: ClientIdentity | None) -> PKIMessage:
        """`message` protected for `client` the way its request was (MAC answers MAC), or with the
        server's own credential; unprotected if there is none."""
        ...

    def pkmac_verifier(
        self, client: ClientIdentity
    ) -> Callable[[AlgorithmIdentifier, bytes, bytes], bool] | None:
        """The verifier for a publicKeyMAC POPO with this client's shared secret, if it has one."""
        ...


@dataclass
class ServerOptions:
    """OpenSSL's four server options, and the engine's own limits."""

    send_unprotected_errors: bool = False  # OSSL_CMP_SRV_CTX_set_send_unprotected_errors
    accept_unprotected: bool = False  # OSSL_CMP_SRV_CTX_set_accept_unprotected
    accept_raverified: bool = False  # OSSL_CMP_SRV_CTX_set_accept_raverified
    grant_implicit_confirm: bool = False  # OSSL_CMP_SRV_CTX_set_grant_implicit_confirm
    transaction_timeout: timedelta = timedelta(minutes=10)
    header: HeaderPolicy = field(default_factory=HeaderPolicy)


@dataclass
class ServerConfig:
    """What a server engine is built from (OSSL_CMP_SRV_CTX_new plus the context's settings)."""

    name: GeneralName  # sender of every response
    clock: Clock
    random: RandomBytes
    authenticator: Authenticator
    options: ServerOptions = field(default_factory=ServerOptions)
    transactions: TransactionStore = field(default_factory=InMemoryTransactionStore)
    nonces: NonceStore = field(default_factory=InMemoryNonceStore)


@dataclass(frozen=True)
class Answered:
    """The engine answered on its own (an error, or a message needing no decision)."""

    response: PKIMessage
    closed: bool


@dataclass
class ProtocolContext:
    """What OSSL_CMP_SRV_CTX_get0_cmp_ctx exposes: the state of the last transaction handled."""

    transaction_id: bytes | None = None
    state: str | None = None
    last_request: PKIMessage | None = None
    last_response: PKIMessage | None = None
    closed: bool = True  # OpenSSL: OSSL_CMP_CTX_get_status(...) == -1


class ServerEngine:
    """A CMP server engine over injected clock, randomness, stores and authenticator."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.options = config.options
        self.context = ProtocolContext()

    # ---- receiving ---------------------------------------------------------------------------

    def receive(self, request: bytes | PKIMessage) -> Inbound | Answered:
        """Check a request and report it as an event to decide on, or answer it right away."""
        now = self.config.clock.now()
        message: PKIMessage | None = None
        try:
            message = request if isinstance(request, PKIMessage) else PKIMessage.load(request)
            self.context.last_request = message
            return self._receive(message, now)
        except CmpError as error:
            if message is None and isinstance(request, bytes | bytearray):
                header = recover_header(bytes(request))
            else:
                header = message["header"] if message is not None else None
            return self._answer_error(header, error, None, now)

    def _receive(self, message: PKIMessage, now: datetime) -> Inbound | Answered:
        header = message["header"]
        check_version(header)
        check_header(header, self.options.header, now)
        client = self._authenticate(message, now)
        try:
            return self._receive_from(client, message, now)
        except CmpError as error:
            return self._answer_error(header, error, client, now)

    def _receive_from(self, client: ClientIdentity, message: PKIMessage, now: datetime) -> Inbound:
        header = message["header"]
        tid: bytes = header["transactionID"].native
        transaction = self.config.transactions.load(tid)
        if transaction is not None and transaction.client != client.key:
            # Someone else's transaction: refused without touching it.
            raise NotAuthorized("transactionID belongs to a transaction of another client")
        remember_nonce(header, self.config.nonces, self.options.header, now)
        body_name = message["body"].name
        step = route(State(transaction.state) if transaction else None, body_name)
        if isinstance(step, Refuse):
            if transaction is not None and step.closes:
                self._close(transaction, Trigger.fail)
            raise step.error(step.text)
        if transaction is None:
            transaction = Transaction(
                transaction_id=tid,
                client=client.key,
                request_type=body_name,
                pvno=header["pvno"].native,
                expires_at=now + self.options.transaction_timeout,
            )
        else:
            check_recip_nonce(header, transaction.last_sender_nonce)
        self._bind(transaction, message)
        try:
            return self._event(message, client, transaction, step)
        except CmpError:
            if transaction.state != State.idle:
                self._close(transaction, Trigger.fail)
            raise

    def _authenticate(self, message: PKIMessage, now: datetime) -> ClientIdentity:
        try:
            client = self.config.authenticator.authenticate(message, now)
        except CmpError:
            if not self.options.accept_unprotected:
                raise
            client = _unprotected_client(message)
        if client.protection == "none" and not self.options.accept_unprotected:
            raise BadMessageCheck("request is not protected")
        return client

    def _event(
        self, message: PKIMessage, client: ClientIdentity, transaction: Transaction, step: Dispatch
    ) -> Inbound:
        body = message["body"]
        name = body.name
        tid = transaction.transaction_id
        if name == "pollReq":
            return self._poll_event(message, client, transaction)
        if name == "certConf":
            return self._confirm_event(message, client, transaction)
        if name in RESPONSE_TO:
            requests = self._cert_requests(message, client)
            wants_implicit = _has_info(message["header"], "implicitConfirm")
            return CertificatesRequested(
                tid, message, client, transaction, name, requests, wants_implicit
            )
        if name == "rr":
            entries = tuple(details["certDetails"] for details in body.chosen)
            reasons = tuple(_crl_reason(details) for details in body.chosen)
            return RevocationRequested(tid, message, client, transaction, entries, reasons)
        if name == "genm":
            return GeneralMessageReceived(tid, message, client, transaction, tuple(body.chosen))
        error = body.chosen
        code = error["errorCode"].native
        details = error["errorDetails"] if error["errorDetails"].native is not None else None
        return ErrorReported(
            tid, message, client, transaction, error["pKIStatusInfo"], code, details
        )

    def _cert_requests(
        self, message: PKIMessage, client: ClientIdentity
    ) -> tuple[RequestedCertificate, ...]:
        body = message["body"]
        if body.name == "p10cr":
            csr: CertificationRequest = body.chosen
            return (RequestedCertificate(-1, None, None, csr, verify_p10cr(csr)),)
        seen: set[int] = set()
        requests = []
        for cert_req_msg in body.chosen:
            cert_req_id = cert_req_msg["certReq"]["certReqId"].native
            if cert_req_id < 0 or cert_req_id in seen:
                raise BadRequest(f"certReqId {cert_req_id} negative or repeated")
            seen.add(cert_req_id)
            popo = self._popo(cert_req_msg, message, client)
            template = cert_req_msg["certReq"]["certTemplate"]
            requests.append(RequestedCertificate(cert_req_id, template, cert_req_msg, None, popo))
        return tuple(requests)

    def _popo(
        self, cert_req_msg: CertReqMsg, message: PKIMessage, client: ClientIdentity
    ) -> PopoResult:
        return verify_popo(
            cert_req_msg,
            sender=message["header"]["sender"],
            accept_ra_verified=self.options.accept_raverified,
            pkmac_verify=self.config.authenticator.pkmac_verifier(client),
        )

    def _confirm_event(
        self, message: PKIMessage, client: ClientIdentity, transaction: Transaction
    ) -> CertificatesConfirmed:
        confirmations = []
        mentioned: set[int] = set()
        for cert_status in message["body"].chosen:
            cert_req_id = cert_status["certReqId"].native
            cert_der = transaction.issued.get(cert_req_id)
            if cert_der is None or cert_req_id in mentioned:
                raise BadCertId(f"certConf for unknown or repeated certReqId {cert_req_id}")
            mentioned.add(cert_req_id)
            check_cert_hash(cert_der, cert_status, message["header"]["pvno"].native)
            info = cert_status["statusInfo"]
            present = info.native is not None
            accepted = not present or info["status"].native in ("accepted", "grantedWithMods")
            confirmations.append(
                ConfirmedCertificate(
                    cert_req_id,
                    load_der_x509_certificate(cert_der),
                    accepted,
                    info if present else None,
                )
            )
        unconfirmed = tuple(
            load_der_x509_certificate(der)
            for rid, der in transaction.issued.items()
            if rid not in mentioned
        )
        return CertificatesConfirmed(
            transaction.transaction_id,
            message,
            client,
            transaction,
            tuple(confirmations),
            unconfirmed,
        )

    def _poll_event(
        self, message: PKIMessage, client: ClientIdentity, transaction: Transaction
    ) -> PollReceived:
        original_message = PKIMessage.load(transaction.pending_request)
        original = self._event(original_message, client, transaction, Dispatch(frozenset()))
        if isinstance(original, CertificatesRequested):
            pending = {r.cert_req_id for r in original.requests}
            for poll in message["body"].chosen:
                if poll["certReqId"].native not in pending:
                    raise BadCertId(f"pollReq for unknown certReqId {poll['certReqId'].native}")
        return PollReceived(transaction.transaction_id, message, client, transaction, original)

    # ---- responding --------------------------------------------------------------------------

    def respond(self, inbound: Inbound, decision: Decision) -> PKIMessage:
        """The protected response to `inbound` under `decision`; the transaction moves on."""
        now = self.config.clock.now()
        transaction = inbound.transaction
        try:
            body, trigger, issued, extra = self._decide(inbound, decision, transaction)
        except CmpError as error:
            return self.refuse(inbound, error)
        implicit = trigger is Trigger.grant_implicit
        return self._finish(inbound, transaction, body, trigger, issued, extra, implicit, now)

    def _decide(
        self, inbound: Inbound, decision: Decision, transaction: Transaction
    ) -> tuple[PKIBody, Trigger, dict[int, bytes], list[Certificate]]:
        if isinstance(inbound, PollReceived):
            if isinstance(decision, Defer):
                ids = _poll_ids(inbound.message)
                return (
                    poll_rep_body(ids, decision.check_after, decision.reason),
                    Trigger.defer,
                    {},
                    [],
                )
            return self._decide(inbound.original, decision, transaction)
        if isinstance(decision, Defer):
            transaction.pending_request = inbound.message.dump()
            return self._waiting_body(inbound), Trigger.defer, {}, []
        if isinstance(inbound, CertificatesRequested):
            return self._cert_decision(inbound, decision)
        if isinstance(inbound, RevocationRequested):
            return self._rev_decision(inbound, decision), Trigger.answer, {}, []
        if isinstance(inbound, GeneralMessageReceived):
            if isinstance(decision, GeneralResponse):
                return genp_body(decision.items), Trigger.answer, {}, []
            return self._refusal(decision), Trigger.answer, {}, []
        if isinstance(inbound, CertificatesConfirmed):
            if isinstance(decision, Acknowledge):
                trigger = (
                    Trigger.confirm
                    if transaction.state == State.waiting_certConf
                    else Trigger.answer
                )
                return pkiconf_body(), trigger, {}, []
            return self._refusal(decision), Trigger.fail, {}, []
        if isinstance(inbound, ErrorReported):
            trigger = Trigger.answer if transaction.state == State.idle else Trigger.abort
            return pkiconf_body(), trigger, {}, []
        raise BadRequest(f"no decision possible for {type(inbound).__name__}")

    def _cert_decision(
        self, inbound: CertificatesRequested, decision: Decision
    ) -> tuple[PKIBody, Trigger, dict[int, bytes], list[Certificate]]:
        requests = inbound.requests
        verdicts: Sequence[CertDecision | RevDecision]
        if isinstance(decision, Reject):
            verdicts = [decision] * len(requests)
        elif isinstance(decision, Sequence) and len(decision) == len(requests):
            verdicts = decision
        else:
            raise BadRequest("a certificate request needs one Issue or Reject per CertReqMsg")
        responses: list[CertResponse] = []
        issued: dict[int, bytes] = {}
        extra: list[Certificate] = []
        ca_pubs: list[Certificate] = []
        for request, verdict in zip(requests, verdicts, strict=True):
            if isinstance(verdict, Issue):
                cert_der = verdict.certificate.public_bytes(Encoding.DER)
                status = "grantedWithMods" if verdict.with_modifications else "accepted"
                spki = request.popo.public_key
                if verdict.encrypt or request.popo.encrypt_certificate:
                    if spki is None:
                        raise BadRequest("cannot encrypt the certificate: no public key")
                    encrypted = encrypt_certificate(cert_der, self.config.random)
                    responses.append(
                        cert_response(request.cert_req_id, status_info(status), None, encrypted)
                    )
                else:
                    responses.append(
                        cert_response(request.cert_req_id, status_info(status), verdict.certificate)
                    )
                issued[request.cert_req_id] = cert_der
                extra.extend(c for c in verdict.chain if c not in extra)
                ca_pubs.extend(c for c in verdict.ca_pubs if c not in ca_pubs)
            elif isinstance(verdict, Reject):
                info = status_info("rejection", verdict.fail_info, verdict.text)
                responses.append(cert_response(request.cert_req_id, info))
            else:
                raise BadRequest(f"{type(verdict).__name__} is no answer to a certificate request")
        body = cert_rep_body(RESPONSE_TO[inbound.body_type], responses, ca_pubs)
        if not issued:
            return body, Trigger.answer, {}, extra
        implicit = inbound.implicit_confirm_requested and self.options.grant_implicit_confirm
        return body, (Trigger.grant_implicit if implicit else Trigger.grant), issued, extra

    def _rev_decision(self, inbound: RevocationRequested, decision: Decision) -> PKIBody:
        verdicts: Sequence[CertDecision | RevDecision]
        if isinstance(decision, Reject):
            verdicts = [decision] * len(inbound.entries)
        elif isinstance(decision, Sequence) and len(decision) == len(inbound.entries):
            verdicts = decision
        else:
            raise BadRequest("an rr needs one Revoked or Reject per RevDetails")
        statuses = []
        for verdict in verdicts:
            if isinstance(verdict, Revoked):
                statuses.append(status_info(verdict.status))
            elif isinstance(verdict, Reject):
                statuses.append(status_info("rejection", verdict.fail_info, verdict.text))
            else:
                raise BadRequest(f"{type(verdict).__name__} is no answer to an rr")
        return rev_rep_body(statuses)

    def _refusal(self, decision: Decision) -> PKIBody:
        if not isinstance(decision, Reject):
            raise BadRequest(f"{type(decision).__name__} does not answer this request")
        return error_body(
            status_info("rejection", decision.fail_info, decision.text), decision.text
        )

    def _waiting_body(self, inbound: Inbound) -> PKIBody:
        """Delayed delivery: ip/cp/kup with status waiting, or an error with status waiting."""
        if isinstance(inbound, CertificatesRequested):
            waiting = [
                cert_response(r.cert_req_id, status_info("waiting")) for r in inbound.requests
            ]
            return cert_rep_body(RESPONSE_TO[inbound.body_type], waiting)
        return error_body(status_info("waiting"))

    def _finish(
        self,
        inbound: Inbound,
        transaction: Transaction,
        body: PKIBody,
        trigger: Trigger,
        issued: dict[int, bytes],
        extra: list[Certificate],
        implicit: bool,
        now: datetime,
    ) -> PKIMessage:
        nonce = self.config.random(16)
        header = response_header(
            inbound.message["header"],
            sender=self.config.name,
            sender_nonce=nonce,
            now=now,
            implicit_confirm=implicit,
        )
        message = PKIMessage({"header": header, "body": body})
        if extra:
            message["extraCerts"] = [asn1_certificate(c) for c in extra]
        protected = self.config.authenticator.protect(message, inbound.client)
        fire(transaction, trigger)
        transaction.issued.update(issued)
        transaction.last_sender_nonce = nonce
        if trigger is not Trigger.defer:
            transaction.pending_request = b""
        self._settle(transaction)
        self.context.last_response = protected
        return protected

    # ---- errors, closing, expiry -------------------------------------------------------------

    def _answer_error(
        self,
        header: PKIHeader | None,
        error: CmpError,
        client: ClientIdentity | None,
        now: datetime,
    ) -> Answered:
        info = status_info("rejection", error.fail_info, error.text)
        body = error_body(info, error.text)
        request_header = header if header is not None else _empty_header()
        response = PKIMessage(
            {
                "header": response_header(
                    request_header,
                    sender=self.config.name,
                    sender_nonce=self.config.random(16),
                    now=now,
                ),
                "body": body,
            }
        )
        if not self.options.send_unprotected_errors:
            response = self.config.authenticator.protect(response, client)
        self.context.last_response = response
        self.context.closed = True
        return Answered(response, closed=True)

    def _bind(self, transaction: Transaction, message: PKIMessage) -> None:
        self.context.transaction_id = transaction.transaction_id
        self.context.state = transaction.state
        self.context.closed = False

    def _settle(self, transaction: Transaction) -> None:
        """Persist a live transaction, forget a closed one."""
        self.context.state = transaction.state
        self.context.closed = transaction.closed
        if transaction.closed:
            self.config.transactions.delete(transaction.transaction_id)
        else:
            self.config.transactions.save(transaction)

    def _close(self, transaction: Transaction, trigger: Trigger) -> None:
        fire(transaction, trigger)
        self._settle(transaction)

    def refuse(self, inbound: Inbound, error: CmpError) -> PKIMessage:
        """Answer `inbound` with an error message instead of a decision; the transaction ends."""
        now = self.config.clock.now()
        answered = self._answer_error(inbound.message["header"], error, inbound.client, now)
        if inbound.transaction.state != State.idle:
            self._close(inbound.transaction, Trigger.fail)
        return answered.response

    def expire(self, *, everything: bool = False) -> list[TransactionExpired]:
        """End every transaction past its deadline (or all: `everything`, when shutting down);
        the events say which certificates each left unconfirmed."""
        now = self.config.clock.now()
        deadline = datetime.max.replace(tzinfo=now.tzinfo) if everything else now
        ended = []
        for transaction in list(self.config.transactions.expired(deadline)):
            unconfirmed = tuple(
                load_der_x509_certificate(der) for der in transaction.issued.values()
            )
            state = transaction.state
            self._close(transaction, Trigger.expire)
            ended.append(
                TransactionExpired(
                    transaction.transaction_id, transaction.request_type, state, unconfirmed
                )
            )
        return ended

    @property
    def transaction_closed(self) -> bool:
        """Whether the last response closed its transaction (OpenSSL: status -1)."""
        return self.context.closed


# ---- helpers ---------------------------------------------------------------------------------


def _empty_header() -> PKIHeader:
    null_dn = GeneralName.load(b"\xa4\x02\x30\x00")
    return PKIHeader({"pvno": 2, "sender": null_dn, "recipient": null_dn})


def _unprotected_client(message: PKIMessage) -> ClientIdentity:
    header = message["header"]
    return ClientIdentity("none", header["sender"].dump(), header["senderKID"].native)


def _has_info(header: PKIHeader, info_type: str) -> bool:
    infos = header["generalInfo"]
    return infos.native is not None and any(i["infoType"].native == info_type for i in infos)


def _crl_reason(details: AsnSequence) -> int | None:
    extensions = details["crlEntryDetails"]
    if extensions.native is None:
        return None
    for extension in extensions:
        if extension["extn_id"].native == "crl_reason":
            reason = extension["extn_value"].parsed
            code: int = next(c for c, name in reason._map.items() if name == reason.native)
            return code
    return None


def _poll_ids(message: PKIMessage) -> list[int]:
    return [poll["certReqId"].native for poll in message["body"].chosen]
