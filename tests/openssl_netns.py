"""Running `openssl cmp` mock servers safely in tests: a private network namespace, and a server
that dies with its driver.

OpenSSL's mock server binds every interface, so it only ever runs inside `unshare -n` (root) or
`unshare -r -n` (user namespaces); `isolate` brings `lo` up there and refuses to go on unless `lo`
is the only interface.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
from pathlib import Path


def isolate() -> None:
    """Inside the namespace: bring `lo` up; stop unless it is the only interface."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    links = subprocess.run(
        ["ip", "-o", "link", "show"], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    if any(": lo:" not in line for line in links.splitlines() if line.strip()):
        raise SystemExit("refusing to start the mock: network namespace is not private")


def die_with_parent() -> None:
    """preexec_fn of a server process: SIGKILL it when its driver dies (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def listening(port: int) -> bool:
    """Whether a socket listens on `port`, read from /proc: a probing connection would occupy
    the single-threaded OpenSSL mock until it times out on it."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def unshare_prefix() -> list[str] | None:
    """The unshare command line that gives a private network namespace here, or None."""
    if not (shutil.which("unshare") and shutil.which("ip") and shutil.which("openssl")):
        return None
    candidates = [["unshare", "-n"]] if os.geteuid() == 0 else []
    candidates.append(["unshare", "-r", "-n"])
    for prefix in candidates:
        try:
            probe = subprocess.run(
                [*prefix, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    return None


def openssl_has_cmp_mock() -> bool:
    """Whether this `openssl` has `cmp` with the mock server (-port)."""
    try:
        probe = subprocess.run(
            ["openssl", "cmp", "-help"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "-port" in probe.stdout + probe.stderr
