"""The sans-IO CMP server engine: the counterpart of OpenSSL's OSSL_CMP_SRV_CTX and its functions.

`receive` does the generic checks (version, header, protection, replay, transaction binding, FSM
route, POPO, certHash) and reports a verified request as an event; `respond` turns the
application's decision into the protected response and moves the transaction along the FSM. Every
failure becomes a CMP error message carrying whatever of the request's header could be recovered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from asn1crypto.cms import EnvelopedData
from asn1crypto.core import Sequence as AsnSequence
from asn1crypto.crl import CRLReason
from asn1crypto.csr import CertificationRequest
from asn1crypto.x509 import GeneralName
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import Certificate, load_der_x509_certificate

from .asn1 import (
    AlgorithmIdentifier,
    CertReqMsg,
    CertResponse,
    PKIBody,
    PKIHeader,
    PKIMessage,
    PKIStatusInfo,
    has_general_info,
    header_fields,
    null_dn,
    recover_header,
)
from .certhash import check_cert_hash
from .checks import HeaderPolicy, check_header, check_recip_nonce, check_version, remember_nonce
from .envelope import check_recipient_key, encrypt_certificate
from .errors import (
    BadAlg,
    BadCertId,
    BadDataFormat,
    BadMessageCheck,
    BadRequest,
    CmpError,
    NotAuthorized,
    SystemFailure,
    TransactionIdInUse,
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
from .fsm import IllegalTransition, Refuse, State, Trigger, fire, permits, route
from .keygen import KeyPackageFormat, same_public_key, seal_private_key
from .popo import (
    PopoResult,
    central_keygen_popo,
    central_keygen_requested,
    p10cr_central_keygen_requested,
    verify_p10cr,
    verify_popo,
)
from .protection import SignatureCredential
from .responses import (
    RESPONSE_TO,
    cert_rep_body,
    cert_response,
    error_body,
    genp_body,
    pkiconf_body,
    poll_rep_body,
    response_header,
    rev_rep_body,
    status_info,
    unprotected_message,
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


@runtime_checkable
class SigningAuthenticator(Protocol):
    """An `Authenticator` with a signature credential of its own (`ProtectionPolicy` has one):
    by default the key generation authority that signs centrally generated keys."""

    credential: SignatureCredential | None


@dataclass
class ServerOptions:
    """OpenSSL's four server options, and the engine's own limits."""

    send_unprotected_errors: bool = False  # OSSL_CMP_SRV_CTX_set_send_unprotected_errors
    accept_unprotected: bool = False  # OSSL_CMP_SRV_CTX_set_accept_unprotected
    accept_raverified: bool = False  # OSSL_CMP_SRV_CTX_set_accept_raverified
    grant_implicit_confirm: bool = False  # OSSL_CMP_SRV_CTX_set_grant_implicit_confirm
    accept_unprotected_errors: bool = False  # unprotected error messages (-accept_unprot_err)
    # what the KGA signs for central key generation: RFC 9483's key package, or the bare key
    # OpenSSL 3.5 sends (and its client alone reads): see `sanscmp.engine.keygen`
    central_key_package: KeyPackageFormat = KeyPackageFormat.RFC9483
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
    # signs centrally generated keys (RFC 9483 4.1.6; its certificate should have EKU cmKGA);
    # None: the authenticator's own signature credential, as OpenSSL's server uses its own
    key_generation_authority: SignatureCredential | None = None


@dataclass(frozen=True)
class Answered:
    """The engine answered on its own: an error message, nothing for the application to decide.

    `closed` is False only when a live transaction with this transactionID goes on untouched (a
    replay, a reused or foreign transactionID); `unconfirmed` are the certificates of a transaction
    this error ended before they were confirmed (the application may want to revoke them).
    """

    response: PKIMessage
    closed: bool
    transaction_id: bytes | None = None
    unconfirmed: tuple[Certificate, ...] = ()


@dataclass
class ProtocolContext:
    """What OSSL_CMP_SRV_CTX_get0_cmp_ctx exposes: the state of the last transaction handled."""

    transaction_id: bytes | None = None
    state: str | None = None
    last_request: PKIMessage | None = None
    last_response: PKIMessage | None = None
    # OpenSSL: OSSL_CMP_CTX_get_status(...) == -1. True unless a live transaction goes on under
    # the last response's transactionID (a refused replay or reused ID leaves it live: False).
    closed: bool = True


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
        self.context.last_request = None
        message: PKIMessage | None = None
        try:
            message = request if isinstance(request, PKIMessage) else PKIMessage.load(request)
            self.context.last_request = message
            return self._receive(message, now)
        except CmpError as error:
            return self._answer_error(_header_of(request, message), error, None, now)
        except Exception:  # an engine bug: the client still gets a well-formed answer
            failure = SystemFailure("internal error while checking the request")
            return self._answer_error(_header_of(request, message), failure, None, now)

    def error_response(self, request: bytes | PKIMessage, error: CmpError) -> PKIMessage:
        """An error message answering `request` without looking into it (e.g. when shutting down),
        with whatever of its header can be recovered; no transaction is touched."""
        now = self.config.clock.now()
        message = request if isinstance(request, PKIMessage) else None
        return self._answer_error(_header_of(request, message), error, None, now).response

    def _receive(self, message: PKIMessage, now: datetime) -> Inbound | Answered:
        header = message["header"]
        # Protection first: an error about the header is then protected for a verified client.
        client, refusal = self._authenticate(message, now)
        try:
            check_version(header)
            check_header(header, self.options.header, now)
            if refusal is not None:
                raise refusal
        except CmpError as error:
            return self._answer_error(header, error, client, now)
        assert client is not None
        try:
            return self._receive_from(client, message, now)
        except CmpError as error:  # refused before touching any transaction
            return self._answer_error(header, error, client, now)

    def _receive_from(
        self, client: ClientIdentity, message: PKIMessage, now: datetime
    ) -> Inbound | Answered:
        header = message["header"]
        fields = header_fields(header)
        tid = fields.transaction_id
        assert tid is not None  # check_header refused a request without one
        transaction = self.config.transactions.load(tid)
        if transaction is not None and transaction.client != client.key:
            # Someone else's transaction: refused without touching it.
            raise NotAuthorized("transactionID belongs to a transaction of another client")
        remember_nonce(header, self.config.nonces, self.options.header, now)
        body_name = message["body"].name
        step = route(State(transaction.state) if transaction else None, body_name)
        if isinstance(step, Refuse) and (transaction is None or not step.closes):
            raise step.error(step.text)  # no transaction, or a live one that goes on untouched
        if transaction is None:
            transaction = Transaction(
                transaction_id=tid,
                client=client.key,
                request_type=body_name,
                pvno=check_version(header),
                expires_at=now + self.options.transaction_timeout,
            )
        self._bind(transaction)
        try:
            if isinstance(step, Refuse):
                raise step.error(step.text)
            if transaction.state != State.idle:
                _check_follow_up(header, body_name, transaction)
            event = self._event(message, client, transaction)
            if isinstance(event, CertificatesRequested) and not event.requests:
                # every request refused by the engine: nothing left for the application
                response = self.respond(event, [])
                return Answered(response, self.context.closed, tid)
            return event
        except CmpError as error:  # a protocol error inside the transaction ends it
            unconfirmed = self._close(transaction, Trigger.fail)
            return self._answer_error(header, error, client, now, unconfirmed)

    def _authenticate(
        self, message: PKIMessage, now: datetime
    ) -> tuple[ClientIdentity | None, CmpError | None]:
        """The verified client, or why the request is refused (raised after the header checks)."""
        try:
            client = self.config.authenticator.authenticate(message, now)
        except CmpError as error:
            if not self.options.accept_unprotected:
                return None, error
            client = _unprotected_client(message)
        if client.protection == "none" and not self._unprotected_accepted(message):
            return None, BadMessageCheck("request is not protected")
        return client, None

    def _unprotected_accepted(self, message: PKIMessage) -> bool:
        """Whether a request without protection may go on (OpenSSL's unprotected_exception)."""
        if self.options.accept_unprotected:
            return True
        return self.options.accept_unprotected_errors and message["body"].name == "error"

    def _event(
        self, message: PKIMessage, client: ClientIdentity, transaction: Transaction
    ) -> Inbound:
        body = message["body"]
        name = body.name
        tid = transaction.transaction_id
        version = transaction.version
        if name in ("ir", "cr", "kur", "rr", "pollReq") and len(body.chosen) == 0:
            raise BadRequest(f"{name} without any entry")  # SIZE (1..MAX)
        if name == "pollReq":
            return self._poll_event(message, client, transaction)
        if name == "certConf":
            return self._confirm_event(message, client, transaction)
        if name in RESPONSE_TO:
            requests, refused = self._cert_requests(message, client)
            wants_implicit = has_general_info(message["header"], "implicitConfirm")
            return CertificatesRequested(
                tid,
                message,
                client,
                transaction,
                name,
                requests,
                wants_implicit,
                refused,
                version=version,
            )
        if name == "rr":
            entries = tuple(details["certDetails"] for details in body.chosen)
            reasons = tuple(_crl_reason(details) for details in body.chosen)
            return RevocationRequested(
                tid, message, client, transaction, entries, reasons, version=version
            )
        if name == "genm":
            items = tuple(body.chosen)
            return GeneralMessageReceived(tid, message, client, transaction, items, version=version)
        error = body.chosen
        code = error["errorCode"].native
        details = error["errorDetails"] if error["errorDetails"].native is not None else None
        info = error["pKIStatusInfo"]
        unconfirmed = _certificates(transaction.issued.values())
        return ErrorReported(
            tid, message, client, transaction, info, code, details, unconfirmed, version=version
        )

    def _cert_requests(
        self, message: PKIMessage, client: ClientIdentity
    ) -> tuple[tuple[RequestedCertificate, ...], tuple[tuple[int, Reject], ...]]:
        """The requests to decide on, and those refused for their POPO (rejected with its
        failInfo in the response, as OpenSSL does, rather than failing the whole message)."""
        body = message["body"]
        refused: list[tuple[int, Reject]] = []
        if body.name == "p10cr":
            csr: CertificationRequest = body.chosen.untag()  # without p10cr's [4] tag
            try:
                if p10cr_central_keygen_requested(csr):
                    popo = self._central_keygen(client)
                else:
                    popo = verify_p10cr(csr)
                request = RequestedCertificate(-1, None, None, csr, popo, popo.central_keygen)
                return (request,), ()
            except CmpError as error:
                return (), ((-1, Reject(error.fail_info, error.text)),)
        seen: set[int] = set()
        requests = []
        for cert_req_msg in body.chosen:
            cert_req_id = cert_req_msg["certReq"]["certReqId"].native
            if cert_req_id < 0 or cert_req_id in seen:
                raise BadRequest(f"certReqId {cert_req_id} negative or repeated")
            seen.add(cert_req_id)
            try:
                if central_keygen_requested(cert_req_msg):
                    popo = self._central_keygen(client)
                else:
                    popo = self._popo(cert_req_msg, message, client)
            except CmpError as error:
                refused.append((cert_req_id, Reject(error.fail_info, error.text)))
                continue
            template = cert_req_msg["certReq"]["certTemplate"]
            requests.append(
                RequestedCertificate(
                    cert_req_id, template, cert_req_msg, None, popo, popo.central_keygen
                )
            )
        return tuple(requests), tuple(refused)

    def _central_keygen(self, client: ClientIdentity) -> PopoResult:
        """A central key generation request the engine can serve: one it can sign the key for
        and encrypt it to the requester. Refused (like a POPO failure, per request) otherwise,
        so the application never generates a key that cannot be delivered."""
        self._key_recipient(client)
        if self._kga() is None:
            raise BadRequest("central key generation is not available: no KGA credential")
        return central_keygen_popo()

    def _key_recipient(self, client: ClientIdentity) -> bytes | Certificate:
        """Whom a central key is encrypted to: the shared secret of a MAC-protected request
        (PasswordRecipientInfo), or the certificate of a signed one (RFC 9483 4.1.6.1-3)."""
        if client.protection == "mac":
            mac = client.verified.mac_credential if client.verified is not None else None
            if mac is not None:
                return mac.secret
        elif client.protection == "signature" and client.certificate is not None:
            certificate = client.certificate
            check_recipient_key(certificate.public_key().public_bytes(Encoding.DER, _SPKI))
            return certificate
        raise BadRequest("central key generation needs a protected request to encrypt the key to")

    def _kga(self) -> SignatureCredential | None:
        if self.config.key_generation_authority is not None:
            return self.config.key_generation_authority
        authenticator = self.config.authenticator
        if isinstance(authenticator, SigningAuthenticator):
            return authenticator.credential
        return None

    def _sealed_key(
        self, request: RequestedCertificate, verdict: Issue, client: ClientIdentity
    ) -> EnvelopedData | None:
        """CertifiedKeyPair.privateKey for `verdict`; an Issue that does not fit the request
        (no key for central key generation, a key of another certificate, a key nobody asked
        for) is the application's bug: systemFailure."""
        key = verdict.private_key
        if not request.central_keygen:
            if key is not None:
                raise SystemFailure("a private key for a request without central key generation")
            return None
        if key is None:
            raise SystemFailure("central key generation requested but Issue has no private_key")
        if not same_public_key(key, verdict.certificate):
            raise SystemFailure("the private key does not belong to the issued certificate")
        kga = self._kga()
        if kga is None:
            raise SystemFailure("no KGA credential to sign the private key with")
        try:
            return seal_private_key(
                key,
                kga,
                self._key_recipient(client),
                self.config.random,
                self.config.clock.now(),
                package=self.options.central_key_package,
            )
        except BadAlg as error:
            raise SystemFailure(f"cannot send the private key: {error.text}") from None

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
            version=transaction.version,
        )

    def _poll_event(
        self, message: PKIMessage, client: ClientIdentity, transaction: Transaction
    ) -> PollReceived:
        if not transaction.pending_request:
            raise SystemFailure("polling transaction without a deferred request")
        original_message = PKIMessage.load(transaction.pending_request)
        original = self._event(original_message, client, transaction)
        if isinstance(original, CertificatesRequested):
            pending = {r.cert_req_id for r in original.requests}
            for poll in message["body"].chosen:
                if poll["certReqId"].native not in pending:
                    raise BadCertId(f"pollReq for unknown certReqId {poll['certReqId'].native}")
        return PollReceived(
            transaction.transaction_id,
            message,
            client,
            transaction,
            original,
            version=transaction.version,
        )

    # ---- responding --------------------------------------------------------------------------

    def respond(self, inbound: Inbound, decision: Decision) -> PKIMessage:
        """The protected response to `inbound` under `decision`; the transaction moves on.

        An event is answered once: a second `respond` (or one after the transaction expired or
        another request for it was answered) gets an error and changes nothing.
        """
        now = self.config.clock.now()
        transaction = inbound.transaction
        try:
            self._check_current(inbound)
        except CmpError as error:
            header = inbound.message["header"]
            return self._answer_error(header, error, inbound.client, now).response
        try:
            body, trigger, issued, extra = self._decide(inbound, decision, transaction)
            body_name = inbound.message["body"].name
            if not permits(State(transaction.state), body_name, trigger):
                raise IllegalTransition(
                    f"{trigger} does not answer {body_name} in {transaction.state}"
                )
            implicit = trigger is Trigger.grant_implicit
            return self._finish(inbound, transaction, body, trigger, issued, extra, implicit, now)
        except CmpError as error:
            return self.refuse(inbound, error)

    def _check_current(self, inbound: Inbound) -> None:
        """Refuse to answer an event twice, or for a transaction that moved on since it came."""
        record = inbound.transaction
        if record.version != inbound.version or record.closed:
            raise SystemFailure("this request has been answered already")
        stored = self.config.transactions.load(record.transaction_id)
        if record.state == State.idle:
            if stored is not None:
                raise TransactionIdInUse("a transaction with this ID was started meanwhile")
        elif stored is None or stored.version != record.version:
            raise BadRequest("the transaction ended or moved on while the request was decided")

    def _is_current(self, inbound: Inbound) -> bool:
        """Whether `inbound` may still move its transaction (see `_check_current`)."""
        try:
            self._check_current(inbound)
        except CmpError:
            return False
        return True

    def _decide(
        self, inbound: Inbound, decision: Decision, transaction: Transaction
    ) -> tuple[PKIBody, Trigger, dict[int, bytes], list[Certificate]]:
        """The response body, the FSM trigger, the certificates issued and the extraCerts.

        A decision that does not fit the request is the application's bug, not the client's:
        it is answered with systemFailure."""
        if isinstance(inbound, ErrorReported):  # whatever the decision: acknowledged, it ends
            trigger = Trigger.answer if transaction.state == State.idle else Trigger.abort
            return pkiconf_body(), trigger, {}, []
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
        raise SystemFailure(f"no decision possible for {type(inbound).__name__}")

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
            raise SystemFailure("a certificate request needs one Issue or Reject per CertReqMsg")
        responses: list[tuple[int, CertResponse]] = []  # by certReqId
        issued: dict[int, bytes] = {}
        extra: list[Certificate] = []
        ca_pubs: list[Certificate] = []
        for request, verdict in zip(requests, verdicts, strict=True):
            if isinstance(verdict, Issue):
                cert_der = verdict.certificate.public_bytes(Encoding.DER)
                info = _granted(verdict)
                sealed_key = self._sealed_key(request, verdict, inbound.client)
                spki = request.popo.public_key
                if verdict.encrypt or request.popo.encrypt_certificate:
                    if spki is None:
                        raise BadRequest("cannot encrypt the certificate: no public key")
                    encrypted = encrypt_certificate(cert_der, self.config.random)
                    response = cert_response(request.cert_req_id, info, None, encrypted)
                else:
                    response = cert_response(
                        request.cert_req_id, info, verdict.certificate, private_key=sealed_key
                    )
                responses.append((request.cert_req_id, response))
                issued[request.cert_req_id] = cert_der
                extra.extend(c for c in verdict.chain if c not in extra)
                ca_pubs.extend(c for c in verdict.ca_pubs if c not in ca_pubs)
            elif isinstance(verdict, Reject):
                info = status_info("rejection", verdict.fail_info, verdict.text)
                responses.append((request.cert_req_id, cert_response(request.cert_req_id, info)))
            else:
                raise SystemFailure(
                    f"{type(verdict).__name__} is no answer to a certificate request"
                )
        responses.extend(_refusals(inbound))
        ordered = _in_request_order(inbound.message, responses)
        body = cert_rep_body(RESPONSE_TO[inbound.body_type], ordered, ca_pubs)
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
            raise SystemFailure("an rr needs one Revoked or Reject per RevDetails")
        statuses = []
        for verdict in verdicts:
            if isinstance(verdict, Revoked):
                statuses.append(_granted(verdict))
            elif isinstance(verdict, Reject):
                statuses.append(status_info("rejection", verdict.fail_info, verdict.text))
            else:
                raise SystemFailure(f"{type(verdict).__name__} is no answer to an rr")
        return rev_rep_body(statuses)

    def _refusal(self, decision: Decision) -> PKIBody:
        if not isinstance(decision, Reject):
            raise SystemFailure(f"{type(decision).__name__} does not answer this request")
        return error_body(
            status_info("rejection", decision.fail_info, decision.text), decision.text
        )

    def _waiting_body(self, inbound: Inbound) -> PKIBody:
        """Delayed delivery: ip/cp/kup with status waiting, or an error with status waiting."""
        if isinstance(inbound, CertificatesRequested):
            waiting = [
                (r.cert_req_id, cert_response(r.cert_req_id, status_info("waiting")))
                for r in inbound.requests
            ]
            waiting.extend(_refusals(inbound))
            ordered = _in_request_order(inbound.message, waiting)
            return cert_rep_body(RESPONSE_TO[inbound.body_type], ordered)
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
        message = unprotected_message(header, body, extra)
        if self.options.send_unprotected_errors and _is_negative(body):
            response = message
        else:
            response = self.config.authenticator.protect(message, inbound.client)
        fire(transaction, trigger)
        transaction.issued.update(issued)
        transaction.last_sender_nonce = nonce
        transaction.implicit_confirm = implicit
        transaction.expires_at = now + self.options.transaction_timeout  # idle time counts
        if trigger is not Trigger.defer:
            transaction.pending_request = b""
        self._settle(transaction)
        self.context.transaction_id = transaction.transaction_id
        self.context.state = transaction.state
        self.context.closed = transaction.closed
        self.context.last_request = inbound.message
        self.context.last_response = response
        return response

    # ---- errors, closing, expiry -------------------------------------------------------------

    def _answer_error(
        self,
        header: PKIHeader | None,
        error: CmpError,
        client: ClientIdentity | None,
        now: datetime,
        unconfirmed: tuple[Certificate, ...] = (),
    ) -> Answered:
        """The error message for `error`, answering `header` as far as it can be read."""
        body = error_body(status_info("rejection", error.fail_info, error.text), error.text)
        nonce = self.config.random(16)
        try:
            response_head = response_header(
                header if header is not None else _empty_header(),
                sender=self.config.name,
                sender_nonce=nonce,
                now=now,
            )
        except Exception:  # a salvaged header that does not bear reading after all
            response_head = response_header(
                _empty_header(), sender=self.config.name, sender_nonce=nonce, now=now
            )
        response = unprotected_message(response_head, body)
        if not self.options.send_unprotected_errors:
            response = self._protect_error(response, client)
        tid: bytes | None = response_head["transactionID"].native
        live = self.config.transactions.load(tid) if tid else None
        self.context.transaction_id = tid
        self.context.state = live.state if live is not None else State.closed
        self.context.closed = live is None
        self.context.last_response = response
        return Answered(response, live is None, tid, unconfirmed)

    def _protect_error(self, response: PKIMessage, client: ClientIdentity | None) -> PKIMessage:
        try:
            return self.config.authenticator.protect(response, client)
        except Exception:  # an error that cannot be protected still goes out, unprotected
            return response

    def _bind(self, transaction: Transaction) -> None:
        self.context.transaction_id = transaction.transaction_id
        self.context.state = transaction.state
        self.context.closed = False

    def _settle(self, transaction: Transaction) -> None:
        """Persist a live transaction, forget a closed one (one never stored, e.g. an enrolment
        with implicit confirmation, has nothing to forget: version 0 was never saved)."""
        stored = transaction.version > 0
        transaction.version += 1
        if not transaction.closed:
            self.config.transactions.save(transaction)
        elif stored:
            self.config.transactions.delete(transaction.transaction_id)

    def _close(self, transaction: Transaction, trigger: Trigger) -> tuple[Certificate, ...]:
        """End `transaction`; the certificates it issued that were never confirmed."""
        unconfirmed = _certificates(transaction.issued.values())
        fire(transaction, trigger)
        self._settle(transaction)
        return unconfirmed

    def refuse(self, inbound: Inbound, error: CmpError) -> PKIMessage:
        """Answer `inbound` with an error message instead of a decision; the transaction ends
        (unless it moved on since `inbound` came: then nothing is touched)."""
        now = self.config.clock.now()
        unconfirmed: tuple[Certificate, ...] = ()
        if self._is_current(inbound):  # a stale event's transaction is not its to end
            unconfirmed = self._close(inbound.transaction, Trigger.fail)
        header = inbound.message["header"]
        return self._answer_error(header, error, inbound.client, now, unconfirmed).response

    def expire(self, *, everything: bool = False) -> list[TransactionExpired]:
        """End every transaction past its deadline (or all: `everything`, when shutting down);
        the events say which certificates each left unconfirmed."""
        now = self.config.clock.now()
        deadline = datetime.max.replace(tzinfo=now.tzinfo) if everything else now
        ended = []
        for transaction in list(self.config.transactions.expired(deadline)):
            state = transaction.state
            unconfirmed = self._close(transaction, Trigger.expire)
            ended.append(
                TransactionExpired(
                    transaction.transaction_id, transaction.request_type, state, unconfirmed
                )
            )
        return ended

    @property
    def transaction_closed(self) -> bool:
        """Whether the last response ended its transaction, or refused a message without opening
        one (OpenSSL: status -1); False while a live transaction goes on under its ID."""
        return self.context.closed


# ---- helpers ---------------------------------------------------------------------------------


def _header_of(request: bytes | PKIMessage, message: PKIMessage | None) -> PKIHeader | None:
    """The request's header: parsed, or salvaged from bytes that do not decode as a whole."""
    if message is not None:
        header: PKIHeader = message["header"]
        return header
    if isinstance(request, bytes | bytearray | memoryview):
        try:
            return recover_header(bytes(request))
        except Exception:  # salvage only: whatever a broken header raises, there is none
            return None
    return None


def _granted(verdict: Issue | Revoked) -> PKIStatusInfo:
    """The positive status of an Issue or Revoked; its own `status_info` must be positive too."""
    if verdict.status_info is None:
        if isinstance(verdict, Revoked):
            return status_info(verdict.status)
        return status_info("grantedWithMods" if verdict.with_modifications else "accepted")
    if verdict.status_info["status"].native in ("rejection", "waiting"):
        raise SystemFailure(f"{type(verdict).__name__} with a negative status: use Reject or Defer")
    return verdict.status_info


_SPKI = PublicFormat.SubjectPublicKeyInfo


def _refusals(inbound: CertificatesRequested) -> list[tuple[int, CertResponse]]:
    """The rejections of the requests the engine refused itself, with their certReqIds."""
    return [
        (rid, cert_response(rid, status_info("rejection", reject.fail_info, reject.text)))
        for rid, reject in inbound.refused
    ]


def _in_request_order(
    message: PKIMessage, responses: list[tuple[int, CertResponse]]
) -> list[CertResponse]:
    """The CertResponses (with their certReqIds) in the order of the request's CertReqMsgs."""
    body = message["body"]
    ids = [] if body.name == "p10cr" else [m["certReq"]["certReqId"].native for m in body.chosen]
    position = {rid: index for index, rid in enumerate(ids)}
    responses = sorted(responses, key=lambda pair: position.get(pair[0], -1))
    return [response for _, response in responses]


def _check_follow_up(header: PKIHeader, body_name: str, transaction: Transaction) -> None:
    """A message continuing a transaction echoes our last senderNonce; a client reporting an
    error may not have it (it could not read our answer), so there it may be absent."""
    if body_name == "error" and header_fields(header).recip_nonce is None:
        return
    check_recip_nonce(header, transaction.last_sender_nonce)


def _certificates(ders: Iterable[bytes]) -> tuple[Certificate, ...]:
    return tuple(load_der_x509_certificate(der) for der in ders)


def _is_negative(body: PKIBody) -> bool:
    """An error (not `waiting`), or a response rejecting everything (OpenSSL's negative answers
    that `send_unprotected_errors` leaves unprotected)."""
    if body.name == "error":
        return bool(body.chosen["pKIStatusInfo"]["status"].native != "waiting")
    if body.name in ("ip", "cp", "kup"):
        statuses = [r["status"]["status"].native for r in body.chosen["response"]]
    elif body.name == "rp":
        statuses = [info["status"].native for info in body.chosen["status"]]
    else:
        return False
    return bool(statuses) and all(status == "rejection" for status in statuses)


def _empty_header() -> PKIHeader:
    return PKIHeader({"pvno": 2, "sender": null_dn(), "recipient": null_dn()})


def _unprotected_client(message: PKIMessage) -> ClientIdentity:
    fields = header_fields(message["header"])
    return ClientIdentity("none", fields.sender, fields.sender_kid)


def _crl_reason(details: AsnSequence) -> int | None:
    """The CRLReason code of a RevDetails' crlEntryDetails, if it has one."""
    extensions = details["crlEntryDetails"]
    if extensions.native is None:
        return None
    for extension in extensions:
        if extension["extn_id"].dotted == "2.5.29.21":  # id-ce-cRLReasons
            try:
                reason = CRLReason.load(extension["extn_value"].contents, strict=True)
                return int.from_bytes(reason.contents, "big", signed=True)
            except (ValueError, TypeError):
                raise BadDataFormat("malformed CRLReason in crlEntryDetails") from None
    return None


def _poll_ids(message: PKIMessage) -> list[int]:
    return [poll["certReqId"].native for poll in message["body"].chosen]
