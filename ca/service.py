"""The CA's decisions on verified CMP requests: the application side of the engine's event API.

The engine has checked protection, nonces, POPO and the transaction; here the CA decides who may do
what and issues, revokes, answers general messages, and cleans up: enrolment with a PBM reference
or a certificate the CA trusts; kur only with the certificate being updated; rr only with the
certificate's own key or as an authorised RA; unconfirmed or rejected certificates are revoked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from asn1crypto.core import Null
from asn1crypto.x509 import Extensions as AsnExtensions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sanscmp.engine.asn1 import CertTemplate, InfoTypeAndValue
from sanscmp.engine.errors import CmpError, FailInfo
from sanscmp.engine.events import (
    Acknowledge,
    CertDecision,
    CertificatesConfirmed,
    CertificatesRequested,
    ClientIdentity,
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
from sanscmp.engine.responses import asn1_certificate

from .authority import CertificateAuthority, CertificateRequest
from .profile import Profile
from .store import (
    CaStore,
    DuplicateApproval,
    DuplicateSerial,
    InvalidStatusTransition,
    IssuedCertificate,
)
from .template import name_from_asn1, requested_extensions, template_request

REASON_UNSPECIFIED = 0
REASON_SUPERSEDED = 4
REASON_CESSATION = 5


@dataclass
class CaService:
    """Decides on requests for one profile, issuing with `ca` and recording in `store`."""

    ca: CertificateAuthority
    profile: Profile
    store: CaStore
    clock: Callable[[], datetime]
    random_serial: Callable[[], int] = x509.random_serial_number

    def decide(self, inbound: Inbound) -> Decision:
        """The decision on one verified request (what OSSL's six callbacks decide together)."""
        if isinstance(inbound, PollReceived):
            return self._poll(inbound)
        if isinstance(inbound, CertificatesRequested):
            return self._enrol(inbound, approved=False)
        if isinstance(inbound, RevocationRequested):
            return self._revoke_requested(inbound)
        if isinstance(inbound, GeneralMessageReceived):
            return GeneralResponse(self._general_info(inbound))
        if isinstance(inbound, CertificatesConfirmed):
            return self._confirmed(inbound)
        if isinstance(inbound, ErrorReported):
            self._revoke_serials([c.serial_number for c in inbound.unconfirmed], REASON_CESSATION)
            return Acknowledge()
        return Reject(FailInfo.badRequest, f"{type(inbound).__name__} not served")

    def expired(self, event: TransactionExpired) -> None:
        """A transaction timed out: certificates never confirmed are revoked."""
        serials = [c.serial_number for c in event.unconfirmed]
        self._revoke_serials(serials, REASON_CESSATION)

    # ---- enrolment ---------------------------------------------------------------------------

    def _enrol(self, inbound: CertificatesRequested, *, approved: bool) -> Decision:
        refusal = self._authorize_enrolment(inbound)
        if refusal is not None:
            return refusal
        if self.profile.approval == "manual" and not approved:
            try:
                self.store.add_pending(
                    inbound.transaction_id,
                    self.profile.label,
                    inbound.message.dump(),
                    _summary(inbound),
                    self.clock(),
                )
            except DuplicateApproval:
                return Reject(FailInfo.transactionIdInUse, "transactionID was used before")
            return Defer(self.profile.check_after, "waiting for approval by an operator")
        implicit = inbound.implicit_confirm_requested and self.profile.implicit_confirm
        return [self._issue_one(inbound, request, implicit) for request in inbound.requests]

    def _issue_one(
        self, inbound: CertificatesRequested, request: RequestedCertificate, implicit: bool
    ) -> CertDecision:
        try:
            wanted = _certificate_request(request)
        except ValueError as exc:
            return Reject(FailInfo.badCertTemplate, f"unusable certificate template: {exc}")
        old = inbound.client.certificate
        if inbound.body_type == "kur" and old is not None and len(wanted.subject) == 0:
            wanted = replace(wanted, subject=old.subject)  # kur may leave the subject out
        now = self.clock()
        for _attempt in range(3):
            serial = self.random_serial()
            try:
                issued = self.ca.issue(wanted, self.profile, now, serial)
            except CmpError as error:
                return Reject(error.fail_info, error.text)
            certificate = issued.certificate
            record = IssuedCertificate(
                serial=serial,
                der=certificate.public_bytes(Encoding.DER),
                subject=certificate.subject.rfc4514_string(),
                not_before=certificate.not_valid_before_utc,
                not_after=certificate.not_valid_after_utc,
                profile=self.profile.label,
                transaction_id=inbound.transaction_id,
                status="active" if implicit else "unconfirmed",
            )
            try:
                self.store.add(record)
            except DuplicateSerial:
                continue
            path = self.ca.path
            return Issue(
                certificate, chain=path, ca_pubs=path[-1:], with_modifications=issued.modified
            )
        return Reject(FailInfo.systemFailure, "could not allocate a unique serial number")

    def _authorize_enrolment(self, inbound: CertificatesRequested) -> Reject | None:
        client = inbound.client
        if client.protection == "mac":
            if inbound.body_type == "kur":
                return Reject(FailInfo.notAuthorized, "kur must be signed with the old certificate")
            if client.sender_kid is None or not self.profile.allows_reference(client.sender_kid):
                return Reject(FailInfo.notAuthorized, "this PBM reference may not use this profile")
            return None
        if client.protection == "signature" and client.certificate is not None:
            refusal = self._check_signer(client)
            if refusal is not None:
                return refusal
            if inbound.body_type == "kur":
                return self._check_kur_target(inbound)
            return None
        return Reject(FailInfo.notAuthorized, "unauthenticated requests are not served")

    def _check_signer(self, client: ClientIdentity) -> Reject | None:
        """A signer certificate issued by this CA must be known and in force."""
        certificate = client.certificate
        assert certificate is not None
        if certificate.issuer != self.ca.subject:
            return None  # a configured client CA vouched for it; the engine validated the path
        record = self.store.get(certificate.serial_number)
        if record is None or record.der != certificate.public_bytes(Encoding.DER):
            return Reject(FailInfo.signerNotTrusted, "signer certificate unknown to this CA")
        if record.status == "revoked":
            return Reject(FailInfo.certRevoked, "signer certificate is revoked")
        if record.status != "active":
            return Reject(FailInfo.notAuthorized, "signer certificate was never confirmed")
        return None

    def _check_kur_target(self, inbound: CertificatesRequested) -> Reject | None:
        """oldCertID, where given, must name the signer certificate (RFC 9483 4.1.3)."""
        signer = inbound.client.certificate
        assert signer is not None
        if signer.issuer != self.ca.subject:
            return Reject(FailInfo.notAuthorized, "kur only for certificates of this CA")
        for request in inbound.requests:
            if request.cert_req_msg is None:
                continue
            controls = request.cert_req_msg["certReq"]["controls"]
            for control in controls if controls.native is not None else ():
                if control["type"].native != "oldCertID":
                    continue
                old_id = control["value"]
                if old_id["serialNumber"].native != signer.serial_number:
                    return Reject(FailInfo.badCertId, "oldCertID is not the signing certificate")
        return None

    def _poll(self, inbound: PollReceived) -> Decision:
        original = inbound.original
        if not isinstance(original, CertificatesRequested):
            return Reject(FailInfo.badRequest, "nothing deferred for this transaction")
        pending = self.store.get_pending(inbound.transaction_id)
        if pending is None or pending.state == "pending":
            return Defer(self.profile.check_after, "waiting for approval by an operator")
        if pending.state == "rejected":
            return Reject(FailInfo.notAuthorized, pending.reason or "rejected by an operator")
        return self._enrol(original, approved=True)

    # ---- confirmation and revocation ---------------------------------------------------------

    def _confirmed(self, inbound: CertificatesConfirmed) -> Decision:
        for confirmation in inbound.confirmations:
            serial = confirmation.certificate.serial_number
            if confirmation.accepted:
                with contextlib.suppress(InvalidStatusTransition):  # e.g. revoked meanwhile
                    self.store.set_status(serial, "active")
            else:
                self._revoke_serials([serial], REASON_CESSATION)
        self._revoke_serials([c.serial_number for c in inbound.unconfirmed], REASON_CESSATION)
        old = inbound.client.certificate
        accepted = any(c.accepted for c in inbound.confirmations)
        replaced = inbound.transaction.request_type == "kur" and old is not None and accepted
        if replaced and old is not None and self.profile.kur_old_certificate == "revoke":
            self._revoke_serials([old.serial_number], REASON_SUPERSEDED)
        return Acknowledge()

    def _revoke_requested(self, inbound: RevocationRequested) -> Decision:
        verdicts: list[RevDecision] = []
        for template, reason in zip(inbound.entries, inbound.reasons, strict=True):
            verdicts.append(self._revoke_one(inbound.client, template, reason))
        return verdicts

    def _revoke_one(
        self, client: ClientIdentity, template: CertTemplate, reason: int | None
    ) -> RevDecision:
        serial = template["serialNumber"].native
        issuer = template["issuer"]
        if serial is None or issuer.native is None:
            return Reject(FailInfo.badCertTemplate, "RevDetails must give issuer and serialNumber")
        if issuer.chosen.dump() != self.ca.subject.public_bytes():
            return Reject(FailInfo.badCertId, "certificate not issued by this CA")
        record = self.store.get(serial)
        if record is None:
            return Reject(FailInfo.badCertId, f"no certificate with serial {serial:#x}")
        if record.status == "revoked":
            return Reject(FailInfo.certRevoked, "certificate already revoked")
        if not self._may_revoke(client, serial):
            return Reject(FailInfo.notAuthorized, "only the certificate's key or an RA may revoke")
        self.store.set_status(
            serial,
            "revoked",
            revoked_at=self.clock(),
            reason=REASON_UNSPECIFIED if reason is None else reason,
        )
        return Revoked()

    def _may_revoke(self, client: ClientIdentity, serial: int) -> bool:
        signer = client.certificate
        if client.protection != "signature" or signer is None:
            return False
        if self._check_signer(client) is not None:
            return False
        own = signer.issuer == self.ca.subject and signer.serial_number == serial
        return own or signer.subject.rfc4514_string() in self.profile.ra_subjects

    def _revoke_serials(self, serials: list[int], reason: int) -> None:
        now = self.clock()
        for serial in serials:
            record = self.store.get(serial)
            if record is not None and record.status != "revoked":
                # Another worker may have revoked it meanwhile: the result is the same.
                with contextlib.suppress(InvalidStatusTransition):
                    self.store.set_status(serial, "revoked", revoked_at=now, reason=reason)

    # ---- general messages --------------------------------------------------------------------

    def _general_info(self, inbound: GeneralMessageReceived) -> list[InfoTypeAndValue]:
        """Answers to the info types RFC 9483 4.3 asks CAs to serve; others are left out."""
        answers: list[InfoTypeAndValue] = []
        for item in inbound.items:
            kind = item["infoType"].native
            if kind == "caCerts":
                value = [asn1_certificate(c) for c in self.ca.path]
                answers.append(InfoTypeAndValue({"infoType": "caCerts", "infoValue": value}))
            elif kind == "rootCaCert":
                root = asn1_certificate(self.ca.path[-1])
                answers.append(InfoTypeAndValue({"infoType": "rootCaCert", "infoValue": root}))
            elif kind == "implicitConfirm":
                answers.append(
                    InfoTypeAndValue({"infoType": "implicitConfirm", "infoValue": Null()})
                )
        return answers


def _certificate_request(request: RequestedCertificate) -> CertificateRequest:
    """The public key, subject, SANs, CA flag and validity asked for."""
    if request.csr is not None:
        info = request.csr["certification_request_info"]
        requested = requested_extensions(_csr_extensions(info))
        return CertificateRequest(
            info["subject_pk_info"].dump(), name_from_asn1(info["subject"]), *requested, None, None
        )
    assert request.template is not None
    return template_request(request.template)


def _csr_extensions(info: object) -> AsnExtensions | None:
    """The extensionRequest attribute of a PKCS#10 request, if any."""
    for attribute in info["attributes"]:  # type: ignore[index]
        if attribute["type"].native == "extension_request":
            return attribute["values"][0]
    return None


def _summary(inbound: CertificatesRequested) -> str:
    subjects = []
    for request in inbound.requests:
        try:
            subjects.append(
                _certificate_request(request).subject.rfc4514_string() or "(no subject)"
            )
        except ValueError:
            subjects.append("(unusable template)")
    who = inbound.client.sender_kid or b""
    return f"{inbound.body_type} for {', '.join(subjects)} by {inbound.client.protection} {who!r}"
