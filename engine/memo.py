"""Remembering what the engine derives from received values, bounded in entries and in key size.

A client's certificates, names and algorithm identifiers come again with every message, so the
engine keeps what it works out from them (a parsed certificate, its public key, a prepared name).
Those keys arrive from the network: an entry is kept only for a key of at most `max_key_size`
bytes (real certificates are a few kilobytes), so that a peer sending large values cannot make the
caches hold much memory. A larger key is worked out afresh each time, with the same result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cryptography import x509

K = TypeVar("K")
V = TypeVar("V")

CERTIFICATE_BYTES = 16 * 1024  # the largest certificate remembered (ML-DSA-87 ones are ~7.5 KB)
IDENTIFIER_BYTES = 256  # the largest algorithm identifier or OID remembered
NAME_BYTES = 1024  # the largest distinguished name remembered


class Remembered(Generic[K, V]):
    """`function` with a bounded LRU memo for keys whose `size` is at most `max_key_size`."""

    def __init__(
        self,
        function: Callable[[K], V],
        maxsize: int,
        max_key_size: int,
        size: Callable[[K], int],
    ) -> None:
        self._function = function
        self._cached: Any = functools.lru_cache(maxsize=maxsize)(function)
        self._max_key_size = max_key_size
        self._size = size
        functools.update_wrapper(self, function)

    def __call__(self, key: K) -> V:
        if self._size(key) > self._max_key_size:
            return self._function(key)
        result: V = self._cached(key)
        return result

    def cache_info(self) -> Any:
        """The LRU's statistics (`functools.lru_cache`'s)."""
        return self._cached.cache_info()

    def cache_clear(self) -> None:
        """Forget every entry."""
        self._cached.cache_clear()


def certificate_size(certificate: x509.Certificate) -> int:
    """About the DER size of `certificate` (what a memo keyed by it holds on to)."""
    return len(certificate.tbs_certificate_bytes) + len(certificate.signature)


def remembered(
    maxsize: int, max_key_size: int, size: Callable[[Any], int] = len
) -> Callable[[Callable[[K], V]], Remembered[K, V]]:
    """Decorator: a `Remembered` of the function (one argument, hashable)."""

    def wrap(function: Callable[[K], V]) -> Remembered[K, V]:
        return Remembered(function, maxsize, max_key_size, size)

    return wrap
