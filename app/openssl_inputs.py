"""Inputs given the way the `openssl` command takes them: pass-phrase sources, certificate and key
files, and options read from a section of an OpenSSL configuration file.

These let `sanscmp mock` accept an `openssl cmp -port ...` command line or config unchanged.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    load_der_private_key,
    load_pem_private_key,
    pkcs12,
)


class InputError(Exception):
    """An option value that cannot be read: a missing file, a wrong pass phrase, a bad source."""


def read_password(source: str) -> bytes:
    """The secret named by an OpenSSL pass-phrase source: pass:, env:, file:, fd: or stdin."""
    kind, _, value = source.partition(":")
    if kind == "pass":
        return value.encode()
    if kind == "env":
        if value not in os.environ:
            raise InputError(f"environment variable {value!r} for the pass phrase is not set")
        return os.environ[value].encode()
    if kind == "file":
        return _first_line(_read(Path(value), "pass phrase file"))
    if kind == "fd":
        with os.fdopen(int(value), "rb", closefd=False) as stream:
            return _first_line(stream.readline())
    if source == "stdin":
        return _first_line(sys.stdin.buffer.readline())
    raise InputError(f"invalid pass phrase source {source!r} (pass:, env:, file:, fd: or stdin)")


def load_certificates(names: str, password: str | None = None) -> list[x509.Certificate]:
    """Every certificate in the files of a comma- or space-separated list (PEM, DER or PKCS#12)."""
    certificates: list[x509.Certificate] = []
    for name in _split(names):
        certificates.extend(_certificates_in(Path(name), password))
    return certificates


def load_certificate(name: str, password: str | None = None) -> x509.Certificate:
    """The first certificate in one file (PEM, DER or PKCS#12)."""
    certificates = _certificates_in(Path(name), password)
    if not certificates:
        raise InputError(f"no certificate in {name}")
    return certificates[0]


def load_private_key(name: str, password: str | None = None) -> PrivateKeyTypes:
    """A private key from a PEM, DER or PKCS#12 file, decrypted with the pass-phrase source."""
    data = _read(Path(name), "key file")
    secret = read_password(password) if password else None
    try:
        if b"-----BEGIN" in data:
            return load_pem_private_key(data, secret)
        try:
            return load_der_private_key(data, secret)
        except ValueError:
            key, _, _ = pkcs12.load_key_and_certificates(data, secret)
            if key is None:
                raise InputError(f"no private key in {name}") from None
            return key
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot load the private key {name}: {exc}") from None


def load_crl(name: str) -> x509.CertificateRevocationList:
    """A CRL from a PEM or DER file."""
    data = _read(Path(name), "CRL file")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise InputError(f"cannot load the CRL {name}: {exc}") from None


def config_options(path: Path, sections: str) -> dict[str, str]:
    """The options set in an OpenSSL config file: the unnamed/[default] section first, then each
    of `sections` (separated by ':' or whitespace) in turn, later ones overriding."""
    parser = configparser.ConfigParser(
        interpolation=None, strict=False, default_section="\0", comment_prefixes=("#", ";")
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        parser.read_string("[default]\n" + text, source=str(path))
    except configparser.Error as exc:
        raise InputError(f"cannot parse the config file {path}: {exc}") from None
    wanted = ["default", *(s for s in re.split(r"[:\s]+", sections) if s)]
    missing = [s for s in wanted[1:] if not parser.has_section(s)]
    if missing:
        raise InputError(f"no [{missing[0]}] section in the config file {path}")
    values: dict[str, str] = {}
    for section in wanted:
        if parser.has_section(section):
            for key, value in parser.items(section):
                values[key] = _expand(value, values, parser, section)
    return values


_VARIABLE = re.compile(r"\$(?:\{(?:([\w.]+)::)?(\w+)\}|\((?:([\w.]+)::)?(\w+)\)|(\w+))")


def _expand(
    value: str, known: dict[str, str], parser: configparser.ConfigParser, section: str
) -> str:
    """OpenSSL's $name, ${name}, $(name) and ${section::name} references."""

    def lookup(match: re.Match[str]) -> str:
        other = match.group(1) or match.group(3)
        key = match.group(2) or match.group(4) or match.group(5)
        if other:
            if parser.has_option(other, key):
                return parser.get(other, key)
        elif parser.has_option(section, key):
            return parser.get(section, key)
        elif key in known:
            return known[key]
        raise InputError(f"config variable ${key} is not defined")

    return _VARIABLE.sub(lookup, value.strip().strip('"'))


def _certificates_in(path: Path, password: str | None) -> list[x509.Certificate]:
    data = _read(path, "certificate file")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        try:
            return [x509.load_der_x509_certificate(data)]
        except ValueError:
            secret = read_password(password) if password else None
            _, certificate, more = pkcs12.load_key_and_certificates(data, secret)
            return ([certificate] if certificate else []) + list(more)
    except ValueError as exc:
        raise InputError(f"cannot load certificates from {path}: {exc}") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the {what} {path}: {exc.strerror}") from None


def _first_line(data: bytes) -> bytes:
    return data.splitlines()[0] if data else b""


def _split(names: str) -> Iterable[str]:
    return (name for name in re.split(r"[,\s]+", names) if name)
