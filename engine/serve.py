"""One request through a server engine with a decision function: the loop every front end shares.

`serve` is what OSSL_CMP_SRV_process_request does around its callbacks: receive (generic checks),
decide (the application), respond (assemble and protect). A decision function that raises a
`CmpError` refuses the request with that error; any other exception becomes systemFailure, so a
bug in an application never escapes as a traceback to the client.
"""

from __future__ import annotations

from collections.abc import Callable

from .asn1 import PKIMessage
from .errors import CmpError, SystemFailure
from .events import Decision, Inbound
from .server import Answered, ServerEngine

Decide = Callable[[Inbound], Decision]


def serve(engine: ServerEngine, request: bytes | PKIMessage, decide: Decide) -> PKIMessage:
    """The response to `request`, with `decide` choosing what to do about it."""
    inbound = engine.receive(request)
    if isinstance(inbound, Answered):
        return inbound.response
    try:
        return engine.respond(inbound, decide(inbound))
    except CmpError as error:
        return engine.refuse(inbound, error)
    except Exception:  # an application bug must not reach the client as a traceback
        return engine.refuse(inbound, SystemFailure("internal error in the server"))
