"""PasswordBasedMac and PBMAC1: known answers, parameter bounds and the derived-key cache."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from asn1crypto.algos import Pbmac1Params
from asn1crypto.core import Null
from hypothesis import given, settings
from hypothesis import strategies as st

from sanscmp.engine.asn1 import AlgorithmIdentifier, PBMParameter, load_der
from sanscmp.engine.encode import contents_of, sequence, split
from sanscmp.engine.errors import BadAlg
from sanscmp.engine.pbm import (
    DerivedKeyCache,
    MacParameters,
    MacPolicy,
    compute_mac,
    derive_key,
    parse_mac_algorithm,
    pbm_algorithm,
    pbm_key,
    pbmac1_algorithm,
    verify_mac,
)

SALT = bytes(range(16))
DATA = b"SEQUENCE { header, body }"

# ---- known answers, computed here the most obvious way ----------------------------------------


def reference_pbm(secret: bytes, salt: bytes, count: int, owf: str, mac: str, data: bytes) -> bytes:
    """RFC 9810 5.1.3.1, literally: BASEKEY = H^count(secret || salt); MAC = HMAC(BASEKEY, data)."""
    key = secret + salt
    for _ in range(count):
        key = hashlib.new(owf, key).digest()
    return hmac.new(key, data, mac).digest()


def reference_pbkdf2(secret: bytes, salt: bytes, count: int, prf: str, length: int) -> bytes:
    """RFC 8018 5.2, literally: T_i = U_1 ^ ... ^ U_c with U_1 = PRF(P, S || INT(i))."""
    out = b""
    block = 1
    while len(out) < length:
        u = hmac.new(secret, salt + block.to_bytes(4, "big"), prf).digest()
        t = bytearray(u)
        for _ in range(count - 1):
            u = hmac.new(secret, u, prf).digest()
            t = bytearray(a ^ b for a, b in zip(t, u, strict=True))
        out += bytes(t)
        block += 1
    return out[:length]


@pytest.mark.parametrize("owf", ["sha1", "sha224", "sha256", "sha384", "sha512", "sha3_256"])
@pytest.mark.parametrize("mac", ["sha1", "sha256", "sha384", "sha512"])
def test_pbm_known_answer(owf: str, mac: str) -> None:
    alg = pbm_algorithm(SALT, owf=owf, iterations=137, mac=mac)
    params = parse_mac_algorithm(alg)
    assert (params.kdf_hash, params.mac_hash, params.iterations, params.salt) == (
        owf,
        mac,
        137,
        SALT,
    )
    expected = reference_pbm(b"pass phrase", SALT, 137, owf, mac, DATA)
    assert compute_mac(params, b"pass phrase", DATA) == expected
    assert verify_mac(params, b"pass phrase", DATA, expected)


def test_pbm_key_is_count_applications_of_the_owf() -> None:
    once = hashlib.sha256(b"s" + SALT).digest()
    assert pbm_key(b"s", SALT, 1, "sha256") == once
    assert pbm_key(b"s", SALT, 2, "sha256") == hashlib.sha256(once).digest()


def test_both_hmac_sha1_identifiers() -> None:
    """RFC 9481 6.2: hmac-sha1 (1.3.6.1.5.5.8.1.2, OpenSSL's default) and id-hmacWithSHA1."""
    written = pbm_algorithm(SALT, mac="sha1")
    assert written["parameters"]["mac"]["algorithm"].dotted == "1.3.6.1.5.5.8.1.2"
    for oid in ("1.3.6.1.5.5.8.1.2", "1.2.840.113549.2.7"):
        alg = _pbm(mac={"algorithm": oid})
        assert parse_mac_algorithm(alg).mac_hash == "sha1"


def test_rfc_6070_pbkdf2_hmac_sha1_vectors() -> None:
    """The PBKDF2 under PBMAC1 against RFC 6070 (PRF SHA-1, allowed by building params directly)."""
    for count, hex_key in [
        (1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"),
        (2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
        (4096, "4b007901b765489abead49d926f721d065a429c1"),
    ]:
        params = MacParameters("pbmac1", b"salt", count, "sha1", "sha256", 20)
        assert params.derive(b"password").hex() == hex_key
        assert reference_pbkdf2(b"password", b"salt", count, "sha1", 20).hex() == hex_key


@pytest.mark.parametrize("prf", ["sha256", "sha512"])
@pytest.mark.parametrize("mac", ["sha256", "sha512"])
@pytest.mark.parametrize("length", [16, 32, 64])
def test_pbmac1_known_answer(prf: str, mac: str, length: int) -> None:
    alg = pbmac1_algorithm(SALT, prf=prf, iterations=1000, key_length=length, mac=mac)
    params = parse_mac_algorithm(alg)
    key = reference_pbkdf2(b"secret", SALT, 1000, prf, length)
    assert derive_key(params, b"secret") == key
    assert compute_mac(params, b"secret", DATA) == hmac.new(key, DATA, mac).digest()


def test_pbmac1_identifier_encoding() -> None:
    """RFC 9481 6.1.1 / RFC 8018 A.5: PBKDF2 with explicit keyLength and HMAC PRF, NULL params."""
    alg = pbmac1_algorithm(SALT, prf="sha512", iterations=2000, key_length=48, mac="sha256")
    assert alg["algorithm"].dotted == "1.2.840.113549.1.5.14"
    reloaded = load_der(AlgorithmIdentifier, alg.dump())
    kdf = reloaded["parameters"]["key_derivation_func"]
    assert kdf["algorithm"].dotted == "1.2.840.113549.1.5.12"
    assert kdf["parameters"]["prf"]["algorithm"].dotted == "1.2.840.113549.2.11"
    assert kdf["parameters"]["key_length"].native == 48
    mac = reloaded["parameters"]["message_auth_scheme"]
    assert mac["algorithm"].dotted == "1.2.840.113549.2.9"


def test_pbmac1_without_key_length_uses_the_mac_size() -> None:
    alg = _pbmac1(key_length=None, mac="sha512")
    assert parse_mac_algorithm(alg).key_length == 64


def test_wrong_secret_or_data_does_not_verify() -> None:
    params = parse_mac_algorithm(pbm_algorithm(SALT, iterations=100))
    value = compute_mac(params, b"right", DATA)
    assert not verify_mac(params, b"wrong", DATA, value)
    assert not verify_mac(params, b"right", DATA + b"!", value)
    assert not verify_mac(params, b"right", DATA, value[:-1])


# ---- bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "ok"), [(0, False), (99, False), (100, True), (100_000, True), (100_001, False)]
)
def test_pbm_iteration_bounds(count: int, ok: bool) -> None:
    alg = pbm_algorithm(SALT, iterations=count)
    if ok:
        assert parse_mac_algorithm(alg).iterations == count
    else:
        with pytest.raises(BadAlg, match="iterationCount"):
            parse_mac_algorithm(alg)


def test_negative_and_huge_iteration_counts() -> None:
    for count in (-1, 2**64):
        with pytest.raises(BadAlg):
            parse_mac_algorithm(_pbm(iterationCount=count))


@pytest.mark.parametrize(
    ("count", "ok"), [(999, False), (1000, True), (100_000, True), (100_001, False)]
)
def test_pbkdf2_iteration_bounds(count: int, ok: bool) -> None:
    alg = pbmac1_algorithm(SALT, iterations=count)
    if ok:
        assert parse_mac_algorithm(alg).iterations == count
    else:
        with pytest.raises(BadAlg, match="iterationCount"):
            parse_mac_algorithm(alg)


@pytest.mark.parametrize(
    ("length", "ok"), [(0, False), (7, False), (8, True), (128, True), (129, False)]
)
def test_salt_bounds(length: int, ok: bool) -> None:
    for alg in (pbm_algorithm(b"s" * length), pbmac1_algorithm(b"s" * length)):
        if ok:
            assert len(parse_mac_algorithm(alg).salt) == length
        else:
            with pytest.raises(BadAlg, match="salt"):
                parse_mac_algorithm(alg)


@pytest.mark.parametrize(("length", "ok"), [(15, False), (16, True), (64, True), (65, False)])
def test_pbkdf2_key_length_bounds(length: int, ok: bool) -> None:
    alg = pbmac1_algorithm(SALT, key_length=length)
    if ok:
        assert parse_mac_algorithm(alg).key_length == length
    else:
        with pytest.raises(BadAlg, match="keyLength"):
            parse_mac_algorithm(alg)


def test_policy_is_configurable() -> None:
    strict = MacPolicy(min_iterations=1000, owf_hashes=frozenset({"sha512"}))
    with pytest.raises(BadAlg):
        parse_mac_algorithm(pbm_algorithm(SALT, iterations=500, owf="sha512"), strict)
    with pytest.raises(BadAlg, match="one-way function"):
        parse_mac_algorithm(pbm_algorithm(SALT, iterations=1000, owf="sha256"), strict)
    assert parse_mac_algorithm(pbm_algorithm(SALT, iterations=1000, owf="sha512"), strict)


def test_unsupported_algorithms_are_bad_alg() -> None:
    cases = [
        _pbm(owf={"algorithm": "id-shake256"}),
        _pbm(owf={"algorithm": "1.2.3.4"}),
        _pbm(mac={"algorithm": "id-sha256"}),  # a hash is not a MAC
        _pbm(mac={"algorithm": "id-KMACWithSHAKE128"}),
        _pbmac1(prf=None),  # PRF defaults to HMAC-SHA1: not allowed
        _pbmac1(mac="sha512_224"),
        AlgorithmIdentifier({"algorithm": "id-DHBasedMac"}),
        AlgorithmIdentifier({"algorithm": "id-PasswordBasedMac"}),  # no parameters
        AlgorithmIdentifier({"algorithm": "id-PBMAC1"}),
        AlgorithmIdentifier({"algorithm": "sha256WithRSAEncryption"}),
    ]
    for alg in cases:
        with pytest.raises(BadAlg):
            parse_mac_algorithm(load_der(AlgorithmIdentifier, alg.dump()))


def test_pbkdf2_salt_from_another_source_is_bad_alg() -> None:
    params = Pbmac1Params(
        {
            "key_derivation_func": {
                "algorithm": "pbkdf2",
                "parameters": {
                    "salt": {"other_source": {"algorithm": "1.2.3.4"}},
                    "iteration_count": 1000,
                    "key_length": 32,
                    "prf": {"algorithm": "sha256", "parameters": Null()},
                },
            },
            "message_auth_scheme": {"algorithm": "sha256", "parameters": Null()},
        }
    )
    alg = AlgorithmIdentifier({"algorithm": "id-PBMAC1", "parameters": params})
    with pytest.raises(BadAlg, match="salt"):
        parse_mac_algorithm(load_der(AlgorithmIdentifier, alg.dump()))


# ---- cache ------------------------------------------------------------------------------------


def test_cache_hit_skips_derivation_and_gives_the_same_key() -> None:
    cache = DerivedKeyCache()
    params = parse_mac_algorithm(pbm_algorithm(SALT, iterations=5000))
    first = compute_mac(params, b"secret", DATA, cache)
    assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
    assert compute_mac(params, b"secret", DATA, cache) == first
    assert verify_mac(params, b"secret", DATA, first, cache)
    assert (cache.hits, cache.misses) == (2, 1)


def test_every_parameter_and_the_secret_are_part_of_the_key() -> None:
    base = MacParameters("pbm", SALT, 100, "sha256", "sha256")
    variants = [
        base,
        MacParameters("pbm", SALT[::-1], 100, "sha256", "sha256"),
        MacParameters("pbm", SALT, 101, "sha256", "sha256"),
        MacParameters("pbm", SALT, 100, "sha512", "sha256"),
        MacParameters("pbmac1", SALT, 100, "sha256", "sha256", 32),
        MacParameters("pbmac1", SALT, 100, "sha256", "sha256", 33),
    ]
    keys = {p.cache_key(b"secret") for p in variants} | {base.cache_key(b"secret2")}
    assert len(keys) == len(variants) + 1
    # the MAC digest does not change the derived key, so it is rightly not part of it
    assert base.cache_key(b"s") == MacParameters("pbm", SALT, 100, "sha256", "sha1").cache_key(b"s")


def test_cache_keys_do_not_hold_the_secret() -> None:
    cache = DerivedKeyCache()
    secret = b"very secret passphrase"
    compute_mac(parse_mac_algorithm(pbm_algorithm(SALT, iterations=100)), secret, DATA, cache)
    (key,) = cache._entries
    assert secret not in key and len(key) == 32


def test_failed_verification_does_not_fill_the_cache() -> None:
    cache = DerivedKeyCache()
    params = parse_mac_algorithm(pbm_algorithm(SALT, iterations=100))
    assert not verify_mac(params, b"secret", DATA, b"\0" * 32, cache)
    assert len(cache) == 0
    good = compute_mac(params, b"secret", DATA)
    assert verify_mac(params, b"secret", DATA, good, cache)
    assert len(cache) == 1


def test_cache_is_a_bounded_lru() -> None:
    cache = DerivedKeyCache(max_entries=2)
    params = [MacParameters("pbm", bytes([i]) * 8, 100, "sha256", "sha256") for i in range(3)]
    derive_key(params[0], b"s", cache)
    derive_key(params[1], b"s", cache)
    derive_key(params[0], b"s", cache)  # 0 is now the most recently used
    derive_key(params[2], b"s", cache)  # evicts 1
    assert len(cache) == 2
    misses = cache.misses
    derive_key(params[0], b"s", cache)
    assert cache.misses == misses
    derive_key(params[1], b"s", cache)
    assert cache.misses == misses + 1
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        DerivedKeyCache(max_entries=0)


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(max_size=40),
    salt=st.binary(min_size=8, max_size=32),
    count=st.integers(100, 400),
    owf=st.sampled_from(["sha1", "sha256", "sha512"]),
    mac=st.sampled_from(["sha1", "sha256", "sha384"]),
    data=st.binary(max_size=64),
)
def test_pbm_matches_the_reference(
    secret: bytes, salt: bytes, count: int, owf: str, mac: str, data: bytes
) -> None:
    params = parse_mac_algorithm(pbm_algorithm(salt, owf=owf, iterations=count, mac=mac))
    assert compute_mac(params, secret, data) == reference_pbm(secret, salt, count, owf, mac, data)


# ---- helpers ----------------------------------------------------------------------------------


def _pbm(**overrides: object) -> AlgorithmIdentifier:
    fields: dict[str, object] = {
        "salt": SALT,
        "owf": {"algorithm": "id-sha256"},
        "iterationCount": 500,
        "mac": {"algorithm": "id-hmacWithSHA256"},
    }
    fields.update(overrides)
    return AlgorithmIdentifier(
        {"algorithm": "id-PasswordBasedMac", "parameters": PBMParameter(fields)}
    )


def _pbmac1(
    *, prf: str | None = "sha256", mac: str = "sha256", key_length: int | None = 32
) -> AlgorithmIdentifier:
    pbkdf2: dict[str, object] = {"salt": {"specified": SALT}, "iteration_count": 1000}
    if key_length is not None:
        pbkdf2["key_length"] = key_length
    if prf is not None:
        pbkdf2["prf"] = {"algorithm": prf, "parameters": Null()}
    params = Pbmac1Params(
        {
            "key_derivation_func": {"algorithm": "pbkdf2", "parameters": pbkdf2},
            "message_auth_scheme": {"algorithm": mac, "parameters": Null()},
        }
    )
    return load_der(
        AlgorithmIdentifier,
        AlgorithmIdentifier({"algorithm": "id-PBMAC1", "parameters": params}).dump(),
    )


@pytest.mark.parametrize("owf", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("mac", ["sha1", "sha256", "sha384"])
def test_pbm_identifier_built_as_der_equals_asn1crypto_s(owf: str, mac: str) -> None:
    from sanscmp.engine.digests import HMAC_BY_HASH, OWF_BY_HASH

    salt = bytes(range(16))
    params = PBMParameter(
        {
            "salt": salt,
            "owf": {"algorithm": OWF_BY_HASH[owf]},
            "iterationCount": 1234,
            "mac": {"algorithm": "hmac-sha1" if mac == "sha1" else HMAC_BY_HASH[mac]},
        }
    )
    expected = AlgorithmIdentifier({"algorithm": "id-PasswordBasedMac", "parameters": params})
    built = pbm_algorithm(salt, owf=owf, iterations=1234, mac=mac)
    assert built.dump() == expected.dump()
    assert built["parameters"]["iterationCount"].native == 1234


def test_pbmac1_identifier_built_as_der_equals_asn1crypto_s() -> None:
    salt = bytes(range(20))
    params = Pbmac1Params(
        {
            "key_derivation_func": {
                "algorithm": "pbkdf2",
                "parameters": {
                    "salt": {"specified": salt},
                    "iteration_count": 777,
                    "key_length": 48,
                    "prf": {"algorithm": "sha384", "parameters": Null()},
                },
            },
            "message_auth_scheme": {"algorithm": "sha512", "parameters": Null()},
        }
    )
    expected = AlgorithmIdentifier({"algorithm": "id-PBMAC1", "parameters": params})
    built = pbmac1_algorithm(salt, prf="sha384", iterations=777, key_length=48, mac="sha512")
    assert built.dump() == expected.dump()


def _outcome(parse: object) -> object:
    try:
        return parse()  # type: ignore[operator]
    except BadAlg as error:
        return ("BadAlg", error.text)


@settings(max_examples=300, deadline=None)
@given(
    salt=st.binary(min_size=0, max_size=80),
    owf=st.sampled_from(["sha1", "sha224", "sha256", "sha384", "sha512", "sha3_256", "shake_128"]),
    mac=st.sampled_from(["sha1", "sha224", "sha256", "sha384", "sha512", "sha3_256"]),
    iterations=st.one_of(st.integers(-5, 200_000), st.sampled_from([100, 500, 10_000])),
    strict=st.booleans(),
)
def test_pbm_read_from_der_gives_the_general_verdict(
    salt: bytes, owf: str, mac: str, iterations: int, strict: bool
) -> None:
    """`parse_mac_algorithm` reads a plain PBM identifier from its DER; the asn1crypto reading
    (`_parse_pbm`) must agree on the parameters, and on the refusal and its text."""
    from sanscmp.engine import pbm

    policy = MacPolicy(owf_hashes=frozenset({"sha256", "sha512"}), min_iterations=500)
    policy = policy if strict else MacPolicy()
    try:
        base = pbm_algorithm(salt, owf=owf, iterations=1, mac=mac)
    except (KeyError, ValueError):
        return  # no identifier for this combination
    oid, params = split(base.contents)
    salt_tlv, owf_tlv, _count, mac_tlv = split(contents_of(params))
    # any count, a zero or negative one too, as a hostile client may send it
    der = sequence(oid, sequence(salt_tlv, owf_tlv, encode_count(iterations), mac_tlv))
    assert _outcome(lambda: parse_mac_algorithm(load_der(AlgorithmIdentifier, der), policy)) == (
        _outcome(lambda: pbm._parse_pbm(load_der(AlgorithmIdentifier, der), policy))
    )


def test_plain_pbm_is_read_from_der() -> None:
    from sanscmp.engine import pbm

    alg = load_der(AlgorithmIdentifier, pbm_algorithm(SALT, iterations=500, mac="sha1").dump())
    assert pbm._acceptable_pbm(alg.contents, MacPolicy()) == MacParameters(
        "pbm", SALT, 500, "sha256", "sha1"
    )
    assert pbm._acceptable_pbm(alg.contents, MacPolicy(min_iterations=1000)) is None


def encode_count(value: int) -> bytes:
    """The DER INTEGER of an iterationCount."""
    length = max(1, (value.bit_length() + 8) // 8)
    return bytes((0x02, length)) + value.to_bytes(length, "big", signed=True)
