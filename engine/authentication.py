"""The server's `Authenticator`: verifies requests with `protection`/`trust` and protects answers.

Answers are protected the way the request was: a MAC-protected request gets a MAC with the same
shared secret and parameters (its derived key comes from the cache, not a second derivation); any
other request gets the server's signature, or its fallback MAC credential, or no protection at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .asn1 import AlgorithmIdentifier, PKIMessage, header_fields
from .events import ClientIdentity
from .pbm import DEFAULT_POLICY, DerivedKeyCache, MacPolicy, parse_mac_algorithm, verify_mac
from .protection import (
    MacCredential,
    MacSecrets,
    RandomBytes,
    SignatureCredential,
    protect,
    verify_protection,
)
from .trust import TrustConfig


@dataclass
class ProtectionPolicy:
    """Who may protect requests (secrets, trust anchors) and how the server protects answers."""

    random: RandomBytes
    mac_secrets: MacSecrets | None = None  # shared secrets by senderKID; None: MAC not accepted
    trust: TrustConfig | None = None  # signer trust; None: signatures not accepted
    credential: SignatureCredential | None = None  # the server's own key and certificate
    fallback_mac: MacCredential | None = None  # for answers to requests that carry no MAC
    mac_policy: MacPolicy = DEFAULT_POLICY
    cache: DerivedKeyCache = field(default_factory=DerivedKeyCache)

    def authenticate(self, message: PKIMessage, now: datetime) -> ClientIdentity:
        """Verify the protection and name the client (`protection == "none"` if there is none)."""
        verified = verify_protection(
            message,
            now=now,
            mac_secrets=self.mac_secrets,
            trust=self.trust,
            mac_policy=self.mac_policy,
            cache=self.cache,
            accept_unprotected=True,
        )
        return ClientIdentity(
            protection=str(verified.kind),
            sender=header_fields(message["header"]).sender,
            sender_kid=verified.sender_kid,
            certificate=verified.certificate,
            chain=verified.chain,
            verified=verified,
        )

    def protect(self, message: PKIMessage, client: ClientIdentity | None) -> PKIMessage:
        """`message` protected like the client's request, else with the server's credential."""
        mac = client.verified.mac_credential if client and client.verified else None
        credential = mac or self.credential or self.fallback_mac
        if credential is None:
            return message
        return protect(message, credential, random_bytes=self.random, cache=self.cache)

    def pkmac_verifier(
        self, client: ClientIdentity
    ) -> Callable[[AlgorithmIdentifier, bytes, bytes], bool] | None:
        """Checks a publicKeyMAC POPO with the secret of a MAC-authenticated client."""
        mac = client.verified.mac_credential if client.verified else None
        if mac is None:
            return None
        secret = mac.secret

        def check(alg: AlgorithmIdentifier, data: bytes, value: bytes) -> bool:
            params = parse_mac_algorithm(alg, self.mac_policy)
            return verify_mac(params, secret, data, value, self.cache)

        return check
