"""`sanscmp mock`: OpenSSL's CMP mock server (apps/lib/cmp_mock_srv.c) as a handler set.

`MockResponses` is what the mock answers with (OpenSSL's mock_srv_ctx: the one certificate it
returns, its status, polling, the genm contents); `MockHandlers` turns that into the six callbacks
of a `CmpServer`. Unlike OpenSSL's mock, polling state is kept per transaction, so concurrent
clients do not disturb each other. `compat="3.0"` reproduces OpenSSL 3.0/3.1 where later versions
changed the mock: kur/rr are checked against the returned certificate (later: `-ref_cert` only),
genm is echoed (later: caCerts, rootCaCert, certReqTemplate and crlStatusList are answered), and
only certificate requests are delayed by `-poll_count` (later: rr, genm and certConf too).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from asn1crypto.crl import CertificateList
from asn1crypto.csr import CertificationRequest
from asn1crypto.x509 import Certificate as AsnCertificate
from asn1crypto.x509 import Name
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from sanscmp.engine.asn1 import (
    CertReqMsg,
    InfoTypeAndValue,
    PKIFreeText,
    PKIMessage,
    PKIStatus,
    PKIStatusInfo,
)
from sanscmp.engine.errors import BadRequest, FailInfo
from sanscmp.engine.events import CertDecision, Defer, Issue, Reject, RevDecision, Revoked
from sanscmp.engine.handlers import CmpServer, Handlers
from sanscmp.engine.popo import central_keygen_requested, p10cr_central_keygen_requested
from sanscmp.engine.responses import status_info

Compat = Literal["3.0", "3.5"]

# The PKIStatus names by number, as `-pkistatus` takes them (RFC 9810 PKIStatus).
PKI_STATUSES: dict[int, str] = PKIStatus._map

# OpenSSL's error reason texts, so that clients print the same diagnostics.
ERROR_PROCESSING = "error processing message"
CERT_PROFILE = "profile1"  # the only certProfile the mock accepts in a cr (OpenSSL 3.3 and later)


@dataclass
class MockResponses:
    """What the mock answers with: the `-rsp_*`, `-ref_cert`, status and polling options."""

    cert_out: x509.Certificate | None = None  # -rsp_cert
    key_out: PrivateKeyTypes | None = None  # -rsp_key, for central key generation
    ref_cert: x509.Certificate | None = None  # -ref_cert
    crl_out: x509.CertificateRevocationList | None = None  # -rsp_crl
    chain_out: tuple[x509.Certificate, ...] = ()  # -rsp_extracerts
    ca_pubs_out: tuple[x509.Certificate, ...] = ()  # -rsp_capubs
    new_with_new: x509.Certificate | None = None  # -rsp_newwithnew
    new_with_old: x509.Certificate | None = None  # -rsp_newwithold
    old_with_new: x509.Certificate | None = None  # -rsp_oldwithnew
    status: str = "accepted"  # -pkistatus
    fail_info: frozenset[FailInfo] = frozenset()  # -failure / -failurebits
    status_string: str = ""  # -statusstring
    send_error: bool = False  # -send_error
    poll_count: int = 0  # -poll_count
    check_after: int = 0  # -check_after
    compat: Compat = "3.5"

    def status_info(self) -> PKIStatusInfo:
        """The configured PKIStatusInfo (OpenSSL's statusOut)."""
        return status_info(self.status, self.fail_info or None, self.status_string)


@dataclass
class _Polling:
    """One transaction's delayed delivery: which request waits and how often it was polled."""

    kind: str
    polls: int = 0


@dataclass
class MockHandlers:
    """OpenSSL's mock server callbacks over `MockResponses`, for `CmpServer.init`."""

    responses: MockResponses
    _polling: dict[bytes, _Polling] = field(default_factory=dict)
    _released: set[tuple[bytes, str]] = field(default_factory=set)

    def handlers(self) -> Handlers:
        """The callbacks, with the clean hook that forgets a transaction's polling state."""
        return Handlers(
            process_cert_request=self.process_cert_request,
            process_rr=self.process_rr,
            process_genm=self.process_genm,
            process_error=self.process_error,
            process_certConf=self.process_certConf,
            process_pollReq=self.process_pollReq,
            clean_transaction=self.clean_transaction,
        )

    # ---- the callbacks -----------------------------------------------------------------------

    def process_cert_request(
        self,
        server: CmpServer,
        request: PKIMessage,
        cert_req_id: int,
        crm: CertReqMsg | None,
        p10cr: CertificationRequest | None,
    ) -> CertDecision | Defer:
        """The configured certificate and status, after polling; kur checked against the
        reference certificate, a cr's certProfile against "profile1"."""
        body_type = self._refuse_if_sending_errors(request)
        if self._starts_polling(request, body_type, delayed=True):
            return Defer(self.responses.check_after)
        responses = self.responses
        if body_type == "cr" and responses.compat != "3.0":
            _check_cert_profile(request)
        if body_type == "kur" and crm is not None:
            reference = responses.cert_out if responses.compat == "3.0" else responses.ref_cert
            if reference is not None:
                _check_old_cert_id(crm, reference)
        if responses.status == "rejection":
            return Reject(responses.fail_info or None, responses.status_string)
        if responses.status == "waiting":
            return Defer(responses.check_after)
        if responses.cert_out is None:
            raise BadRequest("no certificate to return: the mock server has no -rsp_cert")
        central = _central_keygen_requested(crm, p10cr)
        if central and responses.key_out is None:
            raise BadRequest("central key generation requested but the mock has no -rsp_key")
        return Issue(
            responses.cert_out,
            chain=responses.chain_out,
            ca_pubs=responses.ca_pubs_out if body_type == "ir" else (),
            status_info=None if self._plain_accept() else responses.status_info(),
            private_key=responses.key_out if central else None,
        )

    def process_rr(
        self, server: CmpServer, request: PKIMessage, issuer: Name | None, serial: int | None
    ) -> RevDecision | Defer:
        """The configured status, for the reference certificate (if there is one) only."""
        self._refuse_if_sending_errors(request)
        responses = self.responses
        if responses.compat == "3.0":
            if responses.cert_out is None:
                raise BadRequest(ERROR_PROCESSING)
            reference: x509.Certificate | None = responses.cert_out
            given = issuer is not None and serial is not None
        else:
            reference = responses.ref_cert
            given = issuer is not None or serial is not None
        if self._starts_polling(request, "rr"):
            return Defer(responses.check_after)
        if given and reference is not None and not _names_cert(reference, issuer, serial):
            raise BadRequest("request not accepted: wrong certificate to revoke")
        if responses.status == "rejection":
            return Reject(responses.fail_info or None, responses.status_string)
        if responses.status == "waiting":
            return Defer(responses.check_after)
        return Revoked(status_info=responses.status_info())

    def process_genm(
        self, server: CmpServer, request: PKIMessage, items: Sequence[InfoTypeAndValue]
    ) -> Sequence[InfoTypeAndValue] | Defer:
        """Echo the request's InfoTypeAndValues; later versions answer the well-known ones."""
        self._refuse_if_sending_errors(request)
        if len(items) > 1:
            raise BadRequest(ERROR_PROCESSING)
        if self._starts_polling(request, "genm"):
            return Defer(self.responses.check_after)
        if not items or self.responses.compat == "3.0":
            return list(items)
        return [self._general_info(items[0])]

    def process_error(
        self,
        server: CmpServer,
        request: PKIMessage,
        status: PKIStatusInfo,
        error_code: int | None,
        details: PKIFreeText | None,
    ) -> None:
        """Print the client's error report to stderr, as OpenSSL's mock does."""
        lines = ["mock server received error:"]
        native = status.native if status is not None else None
        lines.append(f"pkiStatusInfo: {native}" if native else "pkiStatusInfo absent")
        lines.append(f"errorCode: {error_code}" if error_code is not None else "errorCode absent")
        texts = details.native if details is not None else None
        lines.append(f"errorDetails: {', '.join(texts)}" if texts else "errorDetails absent")
        print("\n".join(lines), file=sys.stderr)

    def process_certConf(
        self,
        server: CmpServer,
        request: PKIMessage,
        cert_req_id: int,
        cert_hash: bytes,
        status: PKIStatusInfo | None,
    ) -> bool | Defer:
        """Accept the confirmation (the engine has checked certHash against what it issued)."""
        self._refuse_if_sending_errors(request)
        if self.responses.cert_out is None:
            raise BadRequest(ERROR_PROCESSING)
        if self._starts_polling(request, "certConf"):
            return Defer(self.responses.check_after)
        return True

    def process_pollReq(
        self, server: CmpServer, request: PKIMessage, cert_req_id: int
    ) -> tuple[bool, int]:
        """Ready after `-poll_count` pollReqs; until then pollRep with `-check_after`."""
        self._refuse_if_sending_errors(request)
        transaction_id = _transaction_id(request)
        polling = self._polling.get(transaction_id)
        if polling is None:
            raise BadRequest("unexpected pollReq: the mock server is not polling")
        polling.polls += 1
        if polling.polls < self.responses.poll_count:
            return False, self.responses.check_after
        del self._polling[transaction_id]
        self._released.add((transaction_id, polling.kind))
        return True, 0

    def clean_transaction(self, server: CmpServer, transaction_id: bytes) -> None:
        """Forget the transaction's polling state."""
        self._polling.pop(transaction_id, None)
        self._released = {entry for entry in self._released if entry[0] != transaction_id}

    # ---- helpers -----------------------------------------------------------------------------

    def _refuse_if_sending_errors(self, request: PKIMessage) -> str:
        if self.responses.send_error:
            raise BadRequest(ERROR_PROCESSING)
        return str(request["body"].name)

    def _starts_polling(self, request: PKIMessage, kind: str, *, delayed: bool = False) -> bool:
        """Whether this request is the one to delay (OpenSSL's delayed_delivery): certificate
        requests always when polling is configured, others only in later versions."""
        if self.responses.poll_count <= 0:
            return False
        if not delayed and self.responses.compat == "3.0":
            return False
        transaction_id = _transaction_id(request)
        if (transaction_id, kind) in self._released:
            return False
        self._polling[transaction_id] = _Polling(kind)
        return True

    def _plain_accept(self) -> bool:
        responses = self.responses
        return responses.status == "accepted" and not (
            responses.fail_info or responses.status_string
        )

    def _general_info(self, item: InfoTypeAndValue) -> InfoTypeAndValue:
        """OpenSSL 3.2+'s answers to the genm info types it knows; others are echoed."""
        info_type = item["infoType"].native
        responses = self.responses
        if info_type == "caCerts":
            return _info("caCerts", [_der(c) for c in responses.ca_pubs_out] or None)
        if info_type == "rootCaCert":
            return _info("rootCaKeyUpdate", self._root_ca_key_update(item))
        if info_type == "crlStatusList":
            return _info("crls", self._crls(item))
        if info_type == "certReqTemplate":
            return _info("certReqTemplate", self._cert_req_template())
        return item

    def _root_ca_key_update(self, item: InfoTypeAndValue) -> dict[str, object] | None:
        responses = self.responses
        if responses.new_with_new is None:
            return None
        old_root = item["infoValue"]
        if old_root.native is not None:
            subject = old_root["tbs_certificate"]["subject"]
            if subject != Name.load(responses.new_with_new.subject.public_bytes()):
                return None
        update: dict[str, object] = {"newWithNew": _der(responses.new_with_new)}
        if responses.new_with_old is not None:
            update["newWithOld"] = _der(responses.new_with_old)
        if responses.old_with_new is not None:
            update["oldWithNew"] = _der(responses.old_with_new)
        return update

    def _crls(self, item: InfoTypeAndValue) -> list[object] | None:
        """The CRL if the client's (single) CRL status is older; none if it is current."""
        statuses = item["infoValue"]
        if statuses.native is None or len(statuses) != 1:
            raise BadRequest("unexpected crlStatusList: exactly one CRLStatus expected")
        crl = self.responses.crl_out
        if crl is None:
            return None
        status = statuses[0]
        source = status["source"]
        if source.name == "issuer":
            first = source.chosen[0]
            if first.name != "directory_name":
                raise BadRequest("CRL issuer must be a directoryName (RFC 9483 4.3.4)")
            if first.chosen != Name.load(crl.issuer.public_bytes()):
                raise BadRequest("unknown CRL issuer")
        this_update = status["thisUpdate"].native
        if this_update is not None and this_update >= crl.last_update_utc:
            return None
        return [CertificateList.load(crl.public_bytes(Encoding.DER))]

    def _cert_req_template(self) -> dict[str, object]:
        """The fixed template: the reference certificate's issuer, EC or RSA-4096 keys."""
        template: dict[str, object] = {}
        if self.responses.ref_cert is not None:
            template["issuer"] = Name.load(self.responses.ref_cert.issuer.public_bytes())
        return {
            "certTemplate": template,
            "keySpec": [
                {"type": "algId", "value": {"algorithm": "1.2.840.10045.2.1"}},
                {"type": "rsaKeyLen", "value": 4096},
            ],
        }


def _info(info_type: str, value: object) -> InfoTypeAndValue:
    if value is None:
        return InfoTypeAndValue({"infoType": info_type})
    return InfoTypeAndValue({"infoType": info_type, "infoValue": value})


def _der(certificate: x509.Certificate) -> AsnCertificate:
    return AsnCertificate.load(certificate.public_bytes(Encoding.DER))


def _transaction_id(request: PKIMessage) -> bytes:
    transaction_id: bytes = request["header"]["transactionID"].native or b""
    return transaction_id


def _names_cert(certificate: x509.Certificate, issuer: Name | None, serial: int | None) -> bool:
    """OpenSSL's refcert_cmp: issuer and serial, as far as given, are those of `certificate`."""
    return (issuer is None or issuer == Name.load(certificate.issuer.public_bytes())) and (
        serial is None or serial == certificate.serial_number
    )


def _check_old_cert_id(crm: CertReqMsg, reference: x509.Certificate) -> None:
    controls = crm["certReq"]["controls"]
    for control in controls if controls.native is not None else ():
        if control["type"].native == "oldCertID":
            cert_id = control["value"]
            issuer = cert_id["issuer"]
            name = issuer.chosen if issuer.name == "directory_name" else None
            if not _names_cert(reference, name, cert_id["serialNumber"].native):
                raise BadRequest("wrong certid")
            return
    raise BadRequest("missing certid")


def _check_cert_profile(request: PKIMessage) -> None:
    infos = request["header"]["generalInfo"]
    for info in infos if infos.native is not None else ():
        if info["infoType"].native == "certProfile":
            names = info["infoValue"].native or []
            if not names or names[0] != CERT_PROFILE:
                raise BadRequest("unexpected certprofile")
            return


def _central_keygen_requested(crm: CertReqMsg | None, p10cr: CertificationRequest | None) -> bool:
    """The engine's rule (RFC 9483 4.1.6; for p10cr OpenSSL's empty key)."""
    if crm is not None:
        return central_keygen_requested(crm)
    return p10cr is not None and p10cr_central_keygen_requested(p10cr)
