"""MAC-based protection keys: PasswordBasedMac (RFC 9810 5.1.3.1) and PBMAC1 (RFC 9481 6.1.1).

Both turn a shared secret into an HMAC key: PBM hashes secret || salt `iterationCount` times with
the one-way function; PBMAC1 runs PBKDF2 (RFC 8018) with an HMAC PRF. The parameters come from the
sender, so a `MacPolicy` bounds them before any work is done: out-of-bounds or unknown parameters
are `BadAlg` (the identifier, as parameterised, is not one this recipient supports), never
`BadMessageCheck`, which would wrongly tell the sender that its secret is wrong.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from asn1crypto.algos import Pbkdf2Params, Pbmac1Params
from asn1crypto.core import Null

from . import encode
from .asn1 import AlgorithmIdentifier, PBMParameter
from .digests import HMAC_BY_HASH, OWF_BY_HASH, hmac_hash_name, owf_name
from .errors import BadAlg
from .memo import IDENTIFIER_BYTES, remembered

# Fixed-output hashes usable as PBM one-way function, PBKDF2 PRF or HMAC digest; SHAKE is not.
_HASH_CONSTRUCTORS: dict[str, Callable[..., hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha224": hashlib.sha224,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
    "sha3_224": hashlib.sha3_224,
    "sha3_256": hashlib.sha3_256,
    "sha3_384": hashlib.sha3_384,
    "sha3_512": hashlib.sha3_512,
}
_SHA2 = frozenset({"sha224", "sha256", "sha384", "sha512"})
_SHA2_SHA3 = _SHA2 | {"sha3_224", "sha3_256", "sha3_384", "sha3_512"}


@dataclass(frozen=True)
class MacPolicy:
    """Which MAC parameters a recipient accepts; everything outside them is `BadAlg`.

    Defaults: PBM iterationCount 100..100000 (OpenSSL's own bounds, OSSL_CRMF_pbm_new); PBKDF2
    iterations 1000 (RFC 8018 4.2) ..100000 (the same worst-case cost as PBM's maximum); salt
    8 (64 bits, RFC 8018 4.1) ..128 bytes; PBKDF2 keyLength 16..64 bytes. SHA-1 stays allowed as
    PBM one-way function and HMAC digest because OpenSSL's default PBM MAC is HMAC-SHA1.
    """

    min_iterations: int = 100
    max_iterations: int = 100_000
    min_pbkdf2_iterations: int = 1_000
    max_pbkdf2_iterations: int = 100_000
    min_salt_length: int = 8
    max_salt_length: int = 128
    min_key_length: int = 16
    max_key_length: int = 64
    owf_hashes: frozenset[str] = frozenset({"sha1"}) | _SHA2_SHA3
    mac_hashes: frozenset[str] = frozenset({"sha1"}) | _SHA2_SHA3
    prf_hashes: frozenset[str] = _SHA2_SHA3


DEFAULT_POLICY = MacPolicy()


@dataclass(frozen=True)
class MacParameters:
    """A parsed, policy-checked PBM or PBMAC1 parameter set: everything needed to derive and MAC."""

    scheme: Literal["pbm", "pbmac1"]
    salt: bytes
    iterations: int
    kdf_hash: str  # hashlib name: PBM's one-way function, or PBKDF2's PRF digest
    mac_hash: str  # hashlib name of the HMAC digest
    key_length: int | None = None  # PBKDF2 dkLen; PBM's key is one OWF output

    def derive(self, secret: bytes) -> bytes:
        """The HMAC key for `secret` (the slow step, hence `DerivedKeyCache`)."""
        if self.scheme == "pbm":
            return pbm_key(secret, self.salt, self.iterations, self.kdf_hash)
        assert self.key_length is not None
        return hashlib.pbkdf2_hmac(
            self.kdf_hash, secret, self.salt, self.iterations, self.key_length
        )

    def cache_key(self, secret: bytes) -> bytes:
        """A digest naming (scheme, parameters, secret) so that no cache keeps the plain secret."""
        h = hashlib.sha256(b"sanscmp derived MAC key\0")
        for part in (
            self.scheme.encode(),
            self.kdf_hash.encode(),
            str(self.iterations).encode(),
            str(self.key_length).encode(),
            self.salt,
            secret,
        ):
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        return h.digest()


def pbm_key(secret: bytes, salt: bytes, iterations: int, owf: str) -> bytes:
    """PBM BASEKEY: the one-way function applied `iterations` times to secret || salt."""
    new = _HASH_CONSTRUCTORS[owf]
    key = new(secret + salt).digest()
    for _ in range(iterations - 1):
        key = new(key).digest()
    return key


def hmac_value(hash_name: str, key: bytes, data: bytes) -> bytes:
    """HMAC of `data` under `key` with the named digest."""
    return hmac.digest(key, data, hash_name)


class DerivedKeyCache:
    """A bounded LRU of derived MAC keys, so that re-used (secret, salt, count, owf) skip the KDF.

    This weakens nothing: the salt is chosen by the protector, a fresh salt per message never hits,
    and a hit only happens for identical parameters and secret, which derive the identical key
    anyway. Entries are keyed by a SHA-256 over parameters and secret, so the cache does not keep a
    rotated secret itself (a memory dump could still test guesses against a key, like against the
    derived keys it stores: keep it in memory only). A verifier adds a key only after the MAC it
    derived verified, so a sender that does not know the secret cannot fill or flush the cache.
    Safe to share between threads under the GIL (a race costs at most a missed hit).
    """

    def __init__(self, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, cache_key: bytes) -> bytes | None:
        """The cached derived key, marking it recently used; None on a miss."""
        value = self._entries.get(cache_key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(KeyError):  # evicted concurrently
            self._entries.move_to_end(cache_key)
        return value

    def put(self, cache_key: bytes, derived: bytes) -> None:
        """Remember a derived key, evicting the least recently used beyond `max_entries`."""
        self._entries[cache_key] = derived
        with contextlib.suppress(KeyError):  # evicted concurrently
            self._entries.move_to_end(cache_key)
        while len(self._entries) > self.max_entries:
            try:
                self._entries.popitem(last=False)
            except KeyError:  # emptied concurrently
                break

    def clear(self) -> None:
        """Forget every derived key (e.g. after a secret was rotated or revoked)."""
        self._entries.clear()


def parse_mac_algorithm(
    alg: AlgorithmIdentifier, policy: MacPolicy = DEFAULT_POLICY
) -> MacParameters:
    """Parse and bound the parameters of a PBM or PBMAC1 identifier; `BadAlg` if not acceptable."""
    fast = _acceptable_pbm(alg.contents, policy)
    if fast is not None:
        return fast
    name = alg["algorithm"].native
    if name == "id-PasswordBasedMac":
        return _parse_pbm(alg, policy)
    if name == "id-PBMAC1":
        return _parse_pbmac1(alg, policy)
    raise BadAlg(f"unsupported MAC-based protection algorithm {alg['algorithm'].dotted}")


def derive_key(params: MacParameters, secret: bytes, cache: DerivedKeyCache | None = None) -> bytes:
    """The derived HMAC key, from `cache` if present there, else computed and cached."""
    if cache is None:
        return params.derive(secret)
    cache_key = params.cache_key(secret)
    key = cache.get(cache_key)
    if key is None:
        key = params.derive(secret)
        cache.put(cache_key, key)
    return key


def compute_mac(
    params: MacParameters, secret: bytes, data: bytes, cache: DerivedKeyCache | None = None
) -> bytes:
    """The MAC value over `data` (the protector's side: its own parameters may fill `cache`)."""
    return hmac_value(params.mac_hash, derive_key(params, secret, cache), data)


def verify_mac(
    params: MacParameters,
    secret: bytes,
    data: bytes,
    mac_value: bytes,
    cache: DerivedKeyCache | None = None,
) -> bool:
    """Whether `mac_value` is the MAC over `data`, compared in constant time.

    The derived key enters `cache` only after the MAC verified: a sender without the secret
    cannot evict the keys of those who have it.
    """
    cache_key = params.cache_key(secret) if cache is not None else b""
    key = cache.get(cache_key) if cache is not None else None
    cached = key is not None
    if key is None:
        key = params.derive(secret)
    ok = hmac.compare_digest(hmac_value(params.mac_hash, key, data), mac_value)
    if ok and cache is not None and not cached:
        cache.put(cache_key, key)
    return ok


def pbm_algorithm(
    salt: bytes, *, owf: str = "sha256", iterations: int = 10_000, mac: str = "sha256"
) -> AlgorithmIdentifier:
    """A PasswordBasedMac identifier; `owf`/`mac` are hashlib names ("sha1" MAC: hmac-sha1 OID).

    Built as DER around the salt from parts encoded once per parameter set: it is made for
    every MAC-protected message, and asn1crypto's dict building cost ~100 µs a time."""
    algorithm, owf_to_mac = _pbm_parts(owf, iterations, mac)
    parameters = encode.sequence(encode.octet_string(salt), owf_to_mac)
    identifier: AlgorithmIdentifier = AlgorithmIdentifier.load(
        encode.sequence(algorithm, parameters)
    )
    return identifier


@functools.lru_cache(maxsize=64)
def _pbm_parts(owf: str, iterations: int, mac: str) -> tuple[bytes, bytes]:
    """(the id-PasswordBasedMac OID, PBMParameter's owf, iterationCount and mac) as DER."""
    mac_oid = "hmac-sha1" if mac == "sha1" else HMAC_BY_HASH[mac]
    template = PBMParameter(
        {
            "salt": b"",
            "owf": {"algorithm": OWF_BY_HASH[owf]},
            "iterationCount": iterations,
            "mac": {"algorithm": mac_oid},
        }
    )
    owf_to_mac = b"".join(template[name].dump() for name in ("owf", "iterationCount", "mac"))
    return AlgorithmIdentifier({"algorithm": "id-PasswordBasedMac"})["algorithm"].dump(), owf_to_mac


def pbmac1_algorithm(
    salt: bytes,
    *,
    prf: str = "sha256",
    iterations: int = 10_000,
    key_length: int = 32,
    mac: str = "sha256",
) -> AlgorithmIdentifier:
    """A PBMAC1 identifier: PBKDF2 with HMAC-`prf` and an explicit keyLength, then HMAC-`mac`.

    Built as DER around the salt from parts encoded once per parameter set (see pbm_algorithm)."""
    algorithm, kdf_oid, after_salt, scheme = _pbmac1_parts(prf, iterations, key_length, mac)
    kdf_params = encode.sequence(encode.octet_string(salt), after_salt)
    parameters = encode.sequence(encode.sequence(kdf_oid, kdf_params), scheme)
    identifier: AlgorithmIdentifier = AlgorithmIdentifier.load(
        encode.sequence(algorithm, parameters)
    )
    return identifier


@functools.lru_cache(maxsize=64)
def _pbmac1_parts(
    prf: str, iterations: int, key_length: int, mac: str
) -> tuple[bytes, bytes, bytes, bytes]:
    """(id-PBMAC1, id-PBKDF2, PBKDF2-params after the salt, messageAuthScheme) as DER."""
    template = Pbmac1Params(
        {
            "key_derivation_func": {
                "algorithm": "pbkdf2",
                "parameters": {
                    "salt": {"specified": b""},
                    "iteration_count": iterations,
                    "key_length": key_length,
                    "prf": {"algorithm": prf, "parameters": Null()},
                },
            },
            # asn1crypto names the id-hmacWithSHA* identifiers by their hashlib names
            "message_auth_scheme": {"algorithm": mac, "parameters": Null()},
        }
    )
    kdf = template["key_derivation_func"]
    kdf_params = kdf["parameters"]
    after_salt = b"".join(
        kdf_params[name].dump() for name in ("iteration_count", "key_length", "prf")
    )
    algorithm = AlgorithmIdentifier({"algorithm": "id-PBMAC1"})["algorithm"].dump()
    scheme = template["message_auth_scheme"].dump()
    return algorithm, kdf["algorithm"].dump(), after_salt, scheme


def _parse_pbm(alg: AlgorithmIdentifier, policy: MacPolicy) -> MacParameters:
    params = alg["parameters"]
    if not isinstance(params, PBMParameter):
        raise BadAlg("PasswordBasedMac without PBMParameter")
    owf = owf_name(params["owf"])
    if owf not in policy.owf_hashes or owf not in _HASH_CONSTRUCTORS:
        raise BadAlg(f"PBM one-way function {params['owf']['algorithm'].dotted} not allowed")
    mac = hmac_hash_name(params["mac"])
    if mac not in policy.mac_hashes:
        raise BadAlg(f"PBM MAC {params['mac']['algorithm'].dotted} not allowed")
    iterations = params["iterationCount"].native
    if not policy.min_iterations <= iterations <= policy.max_iterations:
        raise BadAlg(
            f"PBM iterationCount {iterations} outside "
            f"{policy.min_iterations}..{policy.max_iterations}"
        )
    salt = _bounded_salt(params["salt"].native, policy)
    return MacParameters("pbm", salt, iterations, owf, mac)


def _acceptable_pbm(contents: bytes | None, policy: MacPolicy) -> MacParameters | None:
    """PasswordBasedMac parameters read from the identifier's DER contents, if they are in the
    plain form and within `policy` (what clients send with every message, each with a fresh
    salt); None for anything else, which `_parse_pbm` or `_parse_pbmac1` reads and judges."""
    try:
        oid, params = encode.split(contents or b"")
        if oid != _PBM_OID or params[0] != 0x30:
            return None
        salt, owf, count, mac = encode.split(encode.contents_of(params))
        if (salt[0], owf[0], count[0], mac[0]) != (0x04, 0x30, 0x02, 0x30):
            return None
        owf_hash, mac_hash = _owf_of(owf), _hmac_of(mac)
    except (ValueError, BadAlg):
        return None
    iterations = int.from_bytes(encode.contents_of(count), "big", signed=True)
    salt_value = encode.contents_of(salt)
    if (
        owf_hash not in policy.owf_hashes
        or owf_hash not in _HASH_CONSTRUCTORS
        or mac_hash not in policy.mac_hashes
        or not policy.min_iterations <= iterations <= policy.max_iterations
        or not policy.min_salt_length <= len(salt_value) <= policy.max_salt_length
    ):
        return None
    return MacParameters("pbm", salt_value, iterations, owf_hash, mac_hash)


@remembered(maxsize=64, max_key_size=IDENTIFIER_BYTES)
def _owf_of(der: bytes) -> str:
    """`owf_name` of a DER AlgorithmIdentifier (a handful in use: remembered)."""
    return owf_name(AlgorithmIdentifier.load(der))


@remembered(maxsize=64, max_key_size=IDENTIFIER_BYTES)
def _hmac_of(der: bytes) -> str:
    """`hmac_hash_name` of a DER AlgorithmIdentifier (a handful in use: remembered)."""
    return hmac_hash_name(AlgorithmIdentifier.load(der))


_PBM_OID = bytes.fromhex("06092a864886f67d07420d")  # id-PasswordBasedMac 1.2.840.113533.7.66.13


def _parse_pbmac1(alg: AlgorithmIdentifier, policy: MacPolicy) -> MacParameters:
    params = alg["parameters"]
    if not isinstance(params, Pbmac1Params):
        raise BadAlg("PBMAC1 without PBMAC1-params")
    kdf = params["key_derivation_func"]
    if kdf["algorithm"].native != "pbkdf2":
        raise BadAlg(f"PBMAC1 key derivation {kdf['algorithm'].dotted} not supported")
    pbkdf2 = kdf["parameters"]
    if not isinstance(pbkdf2, Pbkdf2Params):
        raise BadAlg("PBKDF2 without PBKDF2-params")
    if pbkdf2["salt"].name != "specified":
        raise BadAlg("PBKDF2 salt from another source is not supported")
    prf = pbkdf2["prf"]["algorithm"].native
    if prf not in policy.prf_hashes or prf not in _HASH_CONSTRUCTORS:
        raise BadAlg(f"PBKDF2 PRF {pbkdf2['prf']['algorithm'].dotted} not allowed")
    mac = params["message_auth_scheme"]["algorithm"].native
    if mac not in policy.mac_hashes or mac not in _HASH_CONSTRUCTORS:
        raise BadAlg(f"PBMAC1 MAC {params['message_auth_scheme']['algorithm'].dotted} not allowed")
    for hmac_alg in (pbkdf2["prf"], params["message_auth_scheme"]):
        if hmac_alg["parameters"].native is not None:
            raise BadAlg("HMAC parameters must be absent or NULL")
    iterations = pbkdf2["iteration_count"].native
    if not policy.min_pbkdf2_iterations <= iterations <= policy.max_pbkdf2_iterations:
        raise BadAlg(
            f"PBKDF2 iterationCount {iterations} outside "
            f"{policy.min_pbkdf2_iterations}..{policy.max_pbkdf2_iterations}"
        )
    key_length = pbkdf2["key_length"].native
    if key_length is None:  # RFC 8018 leaves it to the MAC: use its digest size
        key_length = hashlib.new(mac).digest_size
    if not policy.min_key_length <= key_length <= policy.max_key_length:
        raise BadAlg(
            f"PBKDF2 keyLength {key_length} outside "
            f"{policy.min_key_length}..{policy.max_key_length}"
        )
    salt = _bounded_salt(pbkdf2["salt"].chosen.native, policy)
    return MacParameters("pbmac1", salt, iterations, prf, mac, key_length)


def _bounded_salt(salt: bytes, policy: MacPolicy) -> bytes:
    if not policy.min_salt_length <= len(salt) <= policy.max_salt_length:
        raise BadAlg(
            f"salt of {len(salt)} bytes outside {policy.min_salt_length}..{policy.max_salt_length}"
        )
    return salt
