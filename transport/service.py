"""What every transport talks to: a `CmpService` (DER request in, DER reply out), and the adapter
that puts an engine front end behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sanscmp.engine.asn1 import PKIMessage, body_name
from sanscmp.engine.errors import FailInfo


@dataclass(frozen=True)
class Reply:
    """A CMP response, and whether the request was undecodable (HTTP answers 400 then, not 200)."""

    body: bytes
    malformed_request: bool = False


class CmpService(Protocol):
    """A CMP endpoint as transports see it."""

    def handle(self, request: bytes) -> Reply:
        """The DER response to a DER request; never raises for bad input."""
        ...


class EngineService:
    """An engine front end (e.g. `CmpServer.process_request`) as a `CmpService`."""

    def __init__(self, process: Callable[[bytes], PKIMessage]) -> None:
        self.process = process

    def handle(self, request: bytes) -> Reply:
        """Every request gets a CMP message back; undecodable ones are flagged for HTTP 400."""
        response = self.process(request)
        malformed = False
        if body_name(response) == "error":
            body = response["body"]
            fail_info = body.chosen["pKIStatusInfo"]["failInfo"].native or set()
            malformed = FailInfo.badDataFormat.name in fail_info
        return Reply(response.dump(), malformed)
