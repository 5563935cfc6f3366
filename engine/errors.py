"""The engine's one error hierarchy: every protocol error names the PKIFailureInfo bit it becomes.

A CMP server answers failures with an error message (or a negative status) whose failInfo bit tells
the client what went wrong; raising one of these is how any engine layer says which bit that is.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class FailInfo(enum.IntEnum):
    """The 27 named bits of PKIFailureInfo (RFC 9810 section 5.2.3), by bit number."""

    badAlg = 0
    badMessageCheck = 1
    badRequest = 2
    badTime = 3
    badCertId = 4
    badDataFormat = 5
    wrongAuthority = 6
    incorrectData = 7
    missingTimeStamp = 8
    badPOP = 9
    certRevoked = 10
    certConfirmed = 11
    wrongIntegrity = 12
    badRecipientNonce = 13
    timeNotAvailable = 14
    unacceptedPolicy = 15
    unacceptedExtension = 16
    addInfoNotAvailable = 17
    badSenderNonce = 18
    badCertTemplate = 19
    signerNotTrusted = 20
    transactionIdInUse = 21
    unsupportedVersion = 22
    notAuthorized = 23
    systemUnavail = 24
    systemFailure = 25
    duplicateCertReq = 26


class CmpError(Exception):
    """Base of every protocol error: a text for statusString and the failInfo bit it maps to."""

    fail_info: ClassVar[FailInfo] = FailInfo.systemFailure

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class BadDataFormat(CmpError):
    """The message or one of its parts cannot be understood."""

    fail_info = FailInfo.badDataFormat


class DecodeError(BadDataFormat):
    """The bytes are not a well-formed (DER) encoding of the expected ASN.1 structure."""


class BadAlg(CmpError):
    """An algorithm identifier is unknown, unsupported, disallowed or does not fit the key."""

    fail_info = FailInfo.badAlg


class BadMessageCheck(CmpError):
    """The protection (MAC or signature) does not verify, or is missing where required."""

    fail_info = FailInfo.badMessageCheck


class WrongIntegrity(CmpError):
    """The kind of protection is not the one expected (e.g. MAC where a signature is required)."""

    fail_info = FailInfo.wrongIntegrity


class SignerNotTrusted(CmpError):
    """The protecting certificate does not chain to a trust anchor or may not sign CMP messages."""

    fail_info = FailInfo.signerNotTrusted


class NotAuthorized(CmpError):
    """The sender is known but may not do what it asks."""

    fail_info = FailInfo.notAuthorized


class BadPOP(CmpError):
    """The proof of possession is missing, of a disallowed kind, or does not verify."""

    fail_info = FailInfo.badPOP


class BadCertId(CmpError):
    """A certificate is not known, or its hash in certConf does not match."""

    fail_info = FailInfo.badCertId


class BadRequest(CmpError):
    """The request is not permitted or not supported in this form."""

    fail_info = FailInfo.badRequest


class BadCertTemplate(CmpError):
    """The certificate template is missing something or asks for something not allowed."""

    fail_info = FailInfo.badCertTemplate


class BadTime(CmpError):
    """messageTime is too far from the local time."""

    fail_info = FailInfo.badTime


class BadSenderNonce(CmpError):
    """senderNonce is missing, too short or replayed."""

    fail_info = FailInfo.badSenderNonce


class BadRecipientNonce(CmpError):
    """recipNonce does not echo the nonce the server sent last."""

    fail_info = FailInfo.badRecipientNonce


class TransactionIdInUse(CmpError):
    """A new transaction reuses the transactionID of a live one."""

    fail_info = FailInfo.transactionIdInUse


class UnsupportedVersion(CmpError):
    """pvno is neither 2 nor 3."""

    fail_info = FailInfo.unsupportedVersion


class SystemUnavail(CmpError):
    """The server cannot handle the request now."""

    fail_info = FailInfo.systemUnavail


class WrongAuthority(CmpError):
    """The request is addressed to another CA."""

    fail_info = FailInfo.wrongAuthority


class SystemFailure(CmpError):
    """The server failed internally; the text says no more than that."""

    fail_info = FailInfo.systemFailure
