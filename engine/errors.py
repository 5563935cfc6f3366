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


class DecodeError(CmpError):
    """The bytes are not a well-formed (DER) encoding of the expected ASN.1 structure."""

    fail_info = FailInfo.badDataFormat
