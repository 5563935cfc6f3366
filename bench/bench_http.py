"""End to end over HTTP: real `openssl cmp` clients against three CMP servers, CPU per transaction.

Run: `python bench/bench_http.py` (about 7 minutes; `--quick` for a ~30 s smoke run; `--help`
for the knobs). Linux only; needs `unshare`, `ip` and the `openssl` command (3.0+).

Why a network namespace: OpenSSL's mock server (`openssl cmp -port`) binds every interface, so the
whole bench re-executes itself inside a private network namespace (`unshare -n` as root,
`unshare -r -n` otherwise), brings `lo` up there and refuses to go on if any other interface is
visible. All servers and clients run inside it and talk over 127.0.0.1.

The servers, one PKI for all of them (made by `sanscmp init`, client certificates enrolled from it):

- (a) `openssl cmp -port P ...`: OpenSSL's mock server. It returns one fixed certificate
  (`-rsp_cert`), stores nothing and issues nothing.
- (b) `sanscmp mock -port P ...`: the same command line with `sanscmp mock` instead of
  `openssl cmp` (skipped with a message when `sanscmp mock --help` fails).
- (c) `sanscmp serve DIR --port P`: the real server, issuing a fresh certificate per request
  from its CA and storing certificates and transactions in SQLite (WAL, synchronous=FULL).

The load: K = 1, 2, 4 parallel `openssl cmp -cmd ir -repeat N` processes, each looping whole
transactions (ir/ip + certConf/pkiconf, or ir/ip alone with `-implicit_confirm`) with pre-made
keys (`-newkey`, generated once). Every cell runs the same total number of transactions T
(N = T / K per client). Profiles:

- `pbm`: PasswordBasedMac (OpenSSL's defaults: 500 iterations, SHA-256, HMAC-SHA1) both ways;
- `ecdsa`: the client signs with a P-256 certificate, new key P-256;
- `rsa`: the client signs with an RSA-2048 certificate, new key RSA-2048.

The servers sign their answers to signed requests with the CMP server's P-256 key in every
profile (the same key and certificate for (a), (b) and (c)).

Measured per run: wall time (tx/s = transactions / wall), the servers' CPU (the sum of
`se.sum_exec_runtime` over all threads of the server process and its descendants from
/proc/<pid>/task/*/sched, falling back to utime+stime from /proc/<pid>/stat) before and after,
and the clients' CPU (`os.wait4` rusage of each client process, process start-up included). The
servers run for the whole bench, idle between runs; runs are interleaved a, b, c, a, b, c, ...
(the order rotates each repetition) so drift and other load hit all servers alike. tx/s is the
median over the repetitions; CPU per transaction is pooled (sum of CPU / sum of transactions).

Keep-alive: `openssl cmp` 3.0 sends HTTP/1.0 requests with `Connection: keep-alive` (its
`-keep_alive 1` default) and reconnects for every transaction. Before the measurements, one probe
per server and profile counts the TCP connections a 4-transaction client opens (client ports in
/proc/net/tcp*, TIME_WAIT included) and prints connections per transaction.

`--profile` adds, after the table, where server CPU goes: `perf record` by shared object and top
symbols for each server process (when `perf` works), and a cProfile of `sanscmp serve` under the
same load, grouped by module.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from openssl_netns import die_with_parent, isolate

NETNS_MARK = "SANSCMP_BENCH_NETNS"
SECRET = "bench-secret"
CLIENT_REF = "bench-client"
SERVER_REF = "bench-server"
CA_NAME = "sanscmp bench CA"
PROFILES = ("pbm", "ecdsa", "rsa")
CONFIRMS = ("explicit", "implicit")
BASE_PORT = 18_100


# =================================================================================================
# The private network namespace
# =================================================================================================


def reexec_in_netns() -> int:
    """Run this script again inside a fresh network namespace; return its exit status."""
    if not shutil.which("unshare"):
        raise SystemExit("unshare(1) not found: the bench needs a private network namespace")
    wrapper = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    env = dict(os.environ, **{NETNS_MARK: "1"})
    command = [*wrapper, "--", sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
    return subprocess.call(command, env=env)


# =================================================================================================
# /proc: CPU of a process tree, listening ports, client connections
# =================================================================================================

TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                tree[ppid].append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(tree.get(current, ()))
    return out


def _sched_seconds(pid: int) -> float | None:
    """CPU of all live threads of `pid` from /proc/<pid>/task/*/sched (ns precision), or None."""
    total = 0.0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            text = (task / "sched").read_text()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("se.sum_exec_runtime"):
                total += float(line.split(":")[1]) / 1000
                break
        else:
            return None
    return total


def _stat_seconds(pid: int, *, children: bool) -> float:
    """utime+stime (and cutime+cstime of reaped children) from /proc/<pid>/stat, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by `pid`, its live descendants and the children it reaped.

    Live threads are read with ns precision from the scheduler's sum_exec_runtime where the
    kernel exposes it (utime+stime in /proc/<pid>/stat only move in 10 ms ticks); reaped children
    only appear in the parent's cutime/cstime ticks.
    """
    total = _stat_seconds(pid, children=True) - _stat_seconds(pid, children=False)
    for member in process_tree(pid):
        precise = _sched_seconds(member)
        total += precise if precise is not None else _stat_seconds(member, children=False)
    return total


def _tcp_sockets() -> list[tuple[int, int, str]]:
    """(local port, remote port, state) of every TCP socket in this network namespace."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local = int(fields[1].rsplit(":", 1)[1], 16)
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                out.append((local, remote, fields[3]))
    return out


def listening(port: int) -> bool:
    """Whether a socket listens on `port`, read from /proc: a probing connection would occupy
    the single-threaded OpenSSL mock."""
    return any(local == port and state == "0A" for local, _, state in _tcp_sockets())


def client_ports(port: int) -> set[int]:
    """Ephemeral ports of connections to `port` still visible (open or TIME_WAIT)."""
    ports = set()
    for local, remote, state in _tcp_sockets():
        if state == "0A":
            continue
        if local == port:
            ports.add(remote)
        elif remote == port:
            ports.add(local)
    return ports


# =================================================================================================
# The PKI, the servers and the clients
# =================================================================================================


def sanscmp_command() -> str:
    """The `sanscmp` entry point next to this interpreter (the same install), else on PATH."""
    beside = Path(sys.executable).parent / "sanscmp"
    found = str(beside) if beside.exists() else shutil.which("sanscmp")
    if not found:
        raise SystemExit("the sanscmp command is not installed")
    return found


@dataclass
class Pki:
    """Files shared by every server and client; made once per bench run."""

    work: Path
    ca_dir: Path  # `sanscmp init` directory: ca.pem, server.pem, server-key.pem, sanscmp.toml
    recipient: str  # the CMP server's subject in openssl's /CN=... form

    def key(self, name: str) -> Path:
        return self.work / f"{name}.key"

    def cert(self, name: str) -> Path:
        return self.work / f"{name}.pem"


def new_key(path: Path, rsa: bool) -> None:
    spec = (
        ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        if rsa
        else ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    )
    subprocess.run(
        ["openssl", "genpkey", *spec, "-out", str(path)], check=True, capture_output=True
    )


@dataclass
class Server:
    """One server process, started once and kept for the whole bench."""

    label: str  # "a", "b", "c"
    title: str
    argv: list[str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.title} exited: {tail(self.log)}")
            if listening(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.title} did not listen on {self.port} within {timeout} s")

    def cpu(self) -> float:
        assert self.process is not None
        return tree_cpu_seconds(self.process.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def protection_args(pki: Pki, profile: str) -> list[str]:
    """Client protection options for a profile."""
    if profile == "pbm":
        return ["-ref", CLIENT_REF, "-secret", f"pass:{SECRET}"]
    return [
        "-cert",
        str(pki.cert(f"client-{profile}")),
        "-key",
        str(pki.key(f"client-{profile}")),
        "-trusted",
        str(pki.ca_dir / "ca.pem"),
    ]


def new_key_name(profile: str) -> str:
    return "new-rsa" if profile == "rsa" else "new-ec"


def client_argv(
    pki: Pki, profile: str, confirm: str, port: int, repeat: int, index: int
) -> list[str]:
    """One `openssl cmp` client looping `repeat` ir transactions with a pre-made key."""
    argv = [
        "openssl",
        "cmp",
        "-config",
        "",
        "-verbosity",
        "3",
        "-cmd",
        "ir",
        "-server",
        f"127.0.0.1:{port}",
        "-path",
        "pkix/",
        "-msg_timeout",
        "60",
        "-recipient",
        pki.recipient,
        *protection_args(pki, profile),
        "-newkey",
        str(pki.key(new_key_name(profile))),
        "-subject",
        "/CN=bench enrolee",
        "-certout",
        str(pki.work / "out" / f"client-{index}.pem"),
        "-repeat",
        str(repeat),
    ]
    if confirm == "implicit":
        argv.append("-implicit_confirm")
    return argv


def mock_args(pki: Pki, profile: str) -> list[str]:
    """The mock servers' options for a profile: PBM or signature protection, fixed answer."""
    if profile == "pbm":
        protection = ["-srv_ref", SERVER_REF, "-srv_secret", f"pass:{SECRET}"]
    else:
        protection = [
            "-srv_cert",
            str(pki.ca_dir / "server.pem"),
            "-srv_key",
            str(pki.ca_dir / "server-key.pem"),
            "-srv_trusted",
            str(pki.ca_dir / "ca.pem"),
        ]
    return [*protection, "-rsp_cert", str(pki.cert(new_key_name(profile))), "-grant_implicitconf"]


def enrol(pki: Pki, port: int, key: str, cert: Path) -> None:
    """Get a certificate for `key` from `sanscmp serve` (PBM, explicit confirmation)."""
    argv = client_argv(pki, "pbm", "explicit", port, 1, 0)
    argv[argv.index("-newkey") + 1] = str(pki.key(key))
    argv[argv.index("-certout") + 1] = str(cert)
    argv[argv.index("-subject") + 1] = f"/CN=bench {key}"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"enrolling {key} failed: {done.stderr.strip()}")


def sanscmp_mock_help(sanscmp: str) -> str | None:
    """`sanscmp mock --help` output, or None when there is no such command (yet)."""
    try:
        done = subprocess.run(
            [sanscmp, "mock", "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout + done.stderr if done.returncode == 0 else None


# =================================================================================================
# One run: K clients against one server
# =================================================================================================


@dataclass
class Sample:
    transactions: int
    wall: float
    server_cpu: float
    client_cpu: float
    idle: float  # share of the machine's CPU time left idle during the run


@dataclass
class Cell:
    """All repetitions of one (profile, confirm, K, server) combination."""

    samples: list[Sample] = field(default_factory=list)
    failure: str = ""

    def tx_per_s(self) -> float:
        return statistics.median(s.transactions / s.wall for s in self.samples)

    def server_us(self) -> float:
        return _pooled(self.samples, "server_cpu")

    def client_us(self) -> float:
        return _pooled(self.samples, "client_cpu")

    def idle(self) -> float:
        return statistics.mean(s.idle for s in self.samples)

    def server_load(self) -> float:
        """Server CPU seconds per wall second: 1.0 is one core fully busy."""
        return sum(s.server_cpu for s in self.samples) / sum(s.wall for s in self.samples)


def _pooled(samples: list[Sample], attribute: str) -> float:
    return sum(getattr(s, attribute) for s in samples) / sum(s.transactions for s in samples) * 1e6


def machine_times() -> tuple[int, int]:
    """(all, idle) CPU ticks of the whole machine from /proc/stat; iowait counts as idle."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values[:8]), values[3] + values[4]


def run_clients(
    pki: Pki, server: Server, profile: str, confirm: str, clients: int, repeat: int
) -> Sample:
    """Start `clients` clients at once, wait for all; CPU of the server and the clients."""
    logs = [pki.work / "logs" / f"client-{i}.log" for i in range(clients)]
    server_before, machine_before = server.cpu(), machine_times()
    start = time.perf_counter()
    processes = []
    for index, log in enumerate(logs):
        with log.open("wb") as out:
            argv = client_argv(pki, profile, confirm, server.port, repeat, index)
            processes.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))
    client_cpu, failures = 0.0, []
    for process, log in zip(processes, logs, strict=True):
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        client_cpu += usage.ru_utime + usage.ru_stime
        if process.returncode != 0:
            failures.append(f"client exit {process.returncode}: {tail(log, 4)}")
    wall = time.perf_counter() - start
    server_cpu = server.cpu() - server_before
    machine_after = machine_times()
    if failures:
        raise RuntimeError("; ".join(failures[:2]) + f"\nserver log: {tail(server.log, 4)}")
    total = machine_after[0] - machine_before[0]
    idle = machine_after[1] - machine_before[1]
    return Sample(clients * repeat, wall, server_cpu, client_cpu, idle / max(total, 1))


def connections_per_transaction(pki: Pki, server: Server, profile: str) -> float:
    """Connections one explicit-confirm client opens per transaction (4 transactions)."""
    before = client_ports(server.port)
    run_clients(pki, server, profile, "explicit", 1, 4)
    return len(client_ports(server.port) - before) / 4


# =================================================================================================
# The bench
# =================================================================================================


@dataclass
class Setup:
    pki: Pki
    servers: dict[str, dict[str, Server]]  # profile -> label -> server
    all_servers: list[Server]
    skipped: list[str]


def setup(args: argparse.Namespace, work: Path) -> Setup:
    """Make the PKI with `sanscmp init` and enrolments, then start every server."""
    sanscmp = sanscmp_command()
    (work / "out").mkdir()
    (work / "logs").mkdir()
    ca_dir = work / "ca"
    init = [sanscmp, "init", str(ca_dir), "--ca-name", CA_NAME]
    subprocess.run(
        [*init, "--pbm-ref", CLIENT_REF, "--pbm-secret", SECRET], check=True, capture_output=True
    )
    pki = Pki(work, ca_dir, f"/CN={CA_NAME} CMP server")
    for name in ("client-ecdsa", "new-ec"):
        new_key(pki.key(name), rsa=False)
    for name in ("client-rsa", "new-rsa"):
        new_key(pki.key(name), rsa=True)

    ports = iter(range(BASE_PORT, BASE_PORT + 100))
    serve_port = next(ports)
    serve_argv = [sanscmp, "serve", str(ca_dir), "--port", str(serve_port)]
    if args.serve_workers:
        serve_argv += ["--workers", str(args.serve_workers)]
    serve = Server("c", "sanscmp serve", serve_argv, serve_port, work / "logs" / "serve.log")
    serve.start()
    # Every certificate comes from sanscmp itself: signature clients must hold certificates it
    # issued (and stored), the mocks hand out the new keys' certificates with -rsp_cert.
    for name in ("client-ecdsa", "client-rsa", "new-ec", "new-rsa"):
        enrol(pki, serve.port, name, pki.cert(name))

    skipped = []
    wanted = set(args.servers)
    mock_help = sanscmp_mock_help(sanscmp) if "b" in wanted else None
    if "b" in wanted and mock_help is None:
        skipped.append("(b) sanscmp mock: `sanscmp mock --help` failed, server (b) skipped")
        wanted.discard("b")
    servers: dict[str, dict[str, Server]] = {}
    all_servers = [serve] if "c" in wanted else []
    for profile in args.profiles:
        servers[profile] = {}
        if "a" in wanted:
            port = next(ports)
            argv = ["openssl", "cmp", "-config", "", "-verbosity", "3", "-port", str(port)]
            servers[profile]["a"] = Server(
                "a",
                "openssl mock",
                argv + mock_args(pki, profile),
                port,
                work / "logs" / f"a-{profile}.log",
            )
        if "b" in wanted:
            port = next(ports)
            argv = [sanscmp, "mock", "-port", str(port)]
            if mock_help and "-verbosity" in mock_help:
                argv += ["-verbosity", "3"]
            servers[profile]["b"] = Server(
                "b",
                "sanscmp mock",
                argv + mock_args(pki, profile),
                port,
                work / "logs" / f"b-{profile}.log",
            )
        if "c" in wanted:
            servers[profile]["c"] = serve
        for label in ("a", "b"):
            if label in servers[profile]:
                servers[profile][label].start()
                all_servers.append(servers[profile][label])
    if "c" not in wanted:
        serve.stop()
    return Setup(pki, servers, all_servers, skipped)


def schedule(args: argparse.Namespace) -> Iterator[tuple[int, str, str, int]]:
    """(repetition, profile, confirm, K): servers are interleaved inside each of these."""
    for repetition in range(args.reps):
        for profile in args.profiles:
            for confirm in args.confirm:
                for clients in args.clients:
                    yield repetition, profile, confirm, clients


def measure(args: argparse.Namespace, ready: Setup) -> dict[tuple[str, str, int, str], Cell]:
    cells: dict[tuple[str, str, int, str], Cell] = defaultdict(Cell)
    for repetition, profile, confirm, clients in schedule(args):
        labels = sorted(ready.servers[profile])
        shift = repetition % len(labels)
        for label in labels[shift:] + labels[:shift]:
            cell = cells[(profile, confirm, clients, label)]
            if cell.failure:
                continue
            repeat = max(1, args.transactions // clients)
            try:
                sample = run_clients(
                    ready.pki, ready.servers[profile][label], profile, confirm, clients, repeat
                )
            except RuntimeError as exc:
                cell.failure = str(exc)
                print(f"  FAILED {profile} {confirm} K={clients} ({label}): {exc}", flush=True)
                continue
            cell.samples.append(sample)
        if args.verbose:
            print(f"  done rep {repetition} {profile} {confirm} K={clients}", flush=True)
    return cells


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return ""
    return f"{value / base:.2f}"


def report(
    args: argparse.Namespace, ready: Setup, cells: dict[tuple[str, str, int, str], Cell]
) -> None:
    titles = {"a": "(a) openssl mock", "b": "(b) sanscmp mock", "c": "(c) sanscmp serve"}
    print(
        "\n| profile | confirm | K | server | tx/s | server µs/tx | server load | client µs/tx"
        " | idle | tx/s vs (a) | server µs vs (a) |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for profile in args.profiles:
        for confirm in args.confirm:
            for clients in args.clients:
                base = cells.get((profile, confirm, clients, "a"))
                base_ok = base is not None and base.samples and not base.failure
                for label in sorted(ready.servers[profile]):
                    cell = cells.get((profile, confirm, clients, label))
                    if cell is None:
                        continue
                    head = f"| {profile} | {confirm} | {clients} | {titles[label]} |"
                    if cell.failure or not cell.samples:
                        print(f"{head} FAILED | | | | | | |")
                        continue
                    tx, server_us = cell.tx_per_s(), cell.server_us()
                    versus = ("", "")
                    if base_ok and label != "a":
                        assert base is not None
                        versus = (ratio(tx, base.tx_per_s()), ratio(server_us, base.server_us()))
                    print(
                        f"{head} {tx:.1f} | {server_us:.0f} | {cell.server_load():.2f}"
                        f" | {cell.client_us():.0f} | {cell.idle():.0%}"
                        f" | {versus[0]} | {versus[1]} |"
                    )


# =================================================================================================
# --profile: where the servers' CPU goes
# =================================================================================================


def perf_works() -> bool:
    if not shutil.which("perf"):
        return False
    done = subprocess.run(
        ["perf", "record", "-q", "-o", "/dev/null", "--", "true"], capture_output=True
    )
    return done.returncode == 0


def perf_profile(ready: Setup, server: Server, profile: str, transactions: int) -> None:
    """`perf record` the server while 2 explicit-confirm clients run; share by shared object."""
    assert server.process is not None
    data = ready.pki.work / f"perf-{server.label}-{profile}.data"
    pids = ",".join(str(p) for p in process_tree(server.process.pid))
    recorder = subprocess.Popen(
        ["perf", "record", "-q", "-F", "1999", "-o", str(data), "-p", pids],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    run_clients(ready.pki, server, profile, "explicit", 2, max(1, transactions // 2))
    recorder.send_signal(signal.SIGINT)
    recorder.wait(timeout=60)
    for sort, limit in (("dso", 6), ("dso,symbol", 6)):
        done = subprocess.run(
            ["perf", "report", "-i", str(data), "--sort", sort, "--stdio", "-q"],
            capture_output=True,
            text=True,
        )
        rows = [line.rstrip() for line in done.stdout.splitlines() if line.strip()]
        print(f"  perf, by {sort}: " + "; ".join(_squeeze(row) for row in rows[:limit]))


def pyspy_command() -> str | None:
    """py-spy next to this interpreter (the `bench` extra installs it), or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def pyspy_profile(ready: Setup, server: Server, profile: str, transactions: int) -> None:
    """Sample the server with py-spy (no instrumentation, unlike cProfile, so call-heavy code is
    not overcharged) while 2 implicit-confirm clients run; share by module group of the leaf
    Python frame (a native call, e.g. a signature or an SQLite statement, counts for its caller)
    and the functions of our own code where samples end."""
    spy = pyspy_command()
    assert server.process is not None and spy is not None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_engine import OTHER, PROFILE_GROUPS

    raw = ready.pki.work / f"pyspy-{server.label}-{profile}.txt"
    options = ["--rate", "500", "--format", "raw", "--output", str(raw)]
    recorder = subprocess.Popen(
        [spy, "record", *options, "--pid", str(server.process.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    run_clients(ready.pki, server, profile, "implicit", 2, max(1, transactions // 2))
    recorder.send_signal(signal.SIGINT)
    recorder.wait(timeout=60)
    if not raw.exists():
        print("  py-spy wrote nothing (ptrace not permitted?)")
        return
    groups: dict[str, int] = defaultdict(int)
    ours: dict[str, int] = defaultdict(int)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("CmpHttpApp" in frame for frame in frames):
            continue  # the event loop waiting, start-up
        samples = int(count)
        total += samples
        leaf = "/" + frames[-1].partition("(")[2]
        groups[next((t for t, m in PROFILE_GROUPS if any(x in leaf for x in m)), OTHER)] += samples
        own = [f for f in frames if "(engine/" in f or "(ca/" in f or "(transport/" in f]
        if own:
            ours[own[-1].rpartition(":")[0] + ")"] += samples
    if not total:
        print("  py-spy: no samples inside the request handler")
        return
    shares = sorted(groups.items(), key=lambda item: -item[1])
    print("  py-spy, leaf frame by group: " + "; ".join(f"{t} {n / total:.0%}" for t, n in shares))
    top = sorted(ours.items(), key=lambda item: -item[1])[:8]
    print("  py-spy, last own frame: " + "; ".join(f"{f} {n / total:.0%}" for f, n in top))


def _squeeze(row: str) -> str:
    return " ".join(row.split()).replace("[.] ", "").replace("[k] ", "")


# Runs `sanscmp serve` with a CPU-time cProfile that SIGUSR1 starts and SIGUSR2 stops and dumps,
# so start-up, imports and warm-up stay out of the profile.
PROFILED_SERVE = """
import cProfile, signal, sys, time
from sanscmp.app.cli import main
profiler = cProfile.Profile(time.process_time)
def start(*_):
    profiler.enable()
def stop(*_):
    profiler.disable()
    profiler.dump_stats(sys.argv[1])
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
main(sys.argv[2:], prog_name="sanscmp")
"""


def cprofile_serve(args: argparse.Namespace, ready: Setup, transactions: int) -> None:
    """cProfile a second `sanscmp serve` of the same directory under each profile's load.

    Own time is grouped by module as in bench_engine.py (built-ins charged to their callers).
    """
    import pstats

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_engine import OTHER, group_of, grouped_own_time, short_path

    output = ready.pki.work / "serve.prof"
    port = BASE_PORT + 99
    argv = [sys.executable, "-c", PROFILED_SERVE, str(output), "serve", str(ready.pki.ca_dir)]
    server = Server(
        "c", "sanscmp serve (cProfile)", [*argv, "--port", str(port)], port, ready.pki.work / "p"
    )
    server.start()
    done = 0
    try:
        for profile in args.profiles:  # warm-up: first requests of each kind
            run_clients(ready.pki, server, profile, "explicit", 1, 2)
        assert server.process is not None
        server.process.send_signal(signal.SIGUSR1)
        for profile in args.profiles:
            repeat = max(1, transactions // 2)
            run_clients(ready.pki, server, profile, "explicit", 2, repeat)
            done += 2 * repeat
        server.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while not output.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    stats = pstats.Stats(str(output))
    groups = grouped_own_time(stats)
    total = sum(groups.values())
    print(
        f"\ncProfile (CPU time) of sanscmp serve, {done} transactions"
        f" ({', '.join(args.profiles)}; explicit confirm, 2 clients): own time by module group"
    )
    for title, seconds in sorted(groups.items(), key=lambda item: -item[1]):
        print(f"  {seconds / done * 1e6:8.0f} µs/tx {seconds / total:5.0%}  {title}")
    print("  top own-time functions (profiled µs per transaction, calls per transaction):")
    entries = stats.stats  # type: ignore[attr-defined]
    for (filename, line, function), entry in sorted(entries.items(), key=lambda i: -i[1][2])[:15]:
        where = f"{short_path(filename)}:{line}({function})" if line else function
        group = group_of(filename, function) or OTHER
        print(f"  {entry[2] / done * 1e6:8.0f} {entry[1] / done:8.1f}  {where}  [{group}]")


def profiles_section(args: argparse.Namespace, ready: Setup) -> None:
    transactions = args.transactions
    if perf_works():
        for profile in args.profiles:
            for label, server in sorted(ready.servers[profile].items()):
                print(f"\n{profile}, ({label}) {server.title}:")
                perf_profile(ready, server, profile, transactions)
    else:
        print("\nperf is not usable here: no per-library profile of the servers")
    if pyspy_command() is not None:
        for profile in args.profiles:
            for label in ("b", "c"):
                if label in ready.servers[profile]:
                    server = ready.servers[profile][label]
                    print(f"\n{profile}, ({label}) {server.title}, implicit confirm, 2 clients:")
                    pyspy_profile(ready, server, profile, transactions)
    else:
        print("\npy-spy not found (pip install '.[bench]'): no sampling profile of the servers")
    if "c" in ready.servers[args.profiles[0]]:
        cprofile_serve(args, ready, transactions)


# =================================================================================================
# main
# =================================================================================================


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="T=24, one repetition (~30 s)")
    parser.add_argument("--reps", type=int, help="repetitions of every cell (default 5)")
    parser.add_argument(
        "--transactions", "-T", type=int, help="transactions per run, split over K (default 100)"
    )
    parser.add_argument("--clients", default="1,2,4", help="K values (default 1,2,4)")
    parser.add_argument("--profiles", default=",".join(PROFILES), help="pbm,ecdsa,rsa")
    parser.add_argument("--confirm", default=",".join(CONFIRMS), help="explicit,implicit")
    parser.add_argument("--servers", default="a,b,c", help="a (openssl), b (mock), c (serve)")
    parser.add_argument("--serve-workers", type=int, help="`sanscmp serve --workers` for (c)")
    parser.add_argument("--profile", action="store_true", help="profile the servers at the end")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--verbose", "-v", action="store_true", help="progress lines")
    args = parser.parse_args()
    args.reps = args.reps or (1 if args.quick else 5)
    args.transactions = args.transactions or (24 if args.quick else 100)
    args.clients = [int(k) for k in args.clients.split(",")]
    args.profiles = [p for p in args.profiles.split(",") if p]
    args.confirm = [c for c in args.confirm.split(",") if c]
    args.servers = [s for s in args.servers.split(",") if s]
    if set(args.profiles) - set(PROFILES) or set(args.confirm) - set(CONFIRMS):
        parser.error(f"profiles are {PROFILES}, confirm modes {CONFIRMS}")
    if set(args.servers) - {"a", "b", "c"}:
        parser.error("servers are a, b, c")
    return args


def openssl_version() -> str:
    done = subprocess.run(["openssl", "version"], capture_output=True, text=True)
    return done.stdout.strip()


def main() -> int:
    args = parse_args()
    if os.environ.get(NETNS_MARK) != "1":
        return reexec_in_netns()
    isolate()
    work = Path(tempfile.mkdtemp(prefix="sanscmp-bench-http-"))
    ready: Setup | None = None
    try:
        started = time.monotonic()
        ready = setup(args, work)
        load = os.getloadavg()[0]
        print(
            f"{openssl_version()}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs;"
            f" load average {load:.2f} at start"
        )
        print(
            f"T = {args.transactions} transactions per run (N = T/K per client), {args.reps}"
            f" repetition(s), servers interleaved; work directory {work}"
        )
        for line in ready.skipped:
            print(line)
        print("\nconnections per transaction (1 client, explicit confirm = 2 requests):")
        for profile in args.profiles:
            probes = []
            for label, server in sorted(ready.servers[profile].items()):
                try:
                    probes.append(
                        f"({label}) {connections_per_transaction(ready.pki, server, profile):.2f}"
                    )
                except RuntimeError as exc:
                    raise SystemExit(f"{profile}: ({label}) {server.title} fails: {exc}") from None
            print(f"  {profile}: " + ", ".join(probes))
        cells = measure(args, ready)
        report(args, ready, cells)
        print(
            f"\nmeasured in {time.monotonic() - started:.0f} s;"
            f" load average {os.getloadavg()[0]:.2f} at the end"
        )
        if args.profile:
            profiles_section(args, ready)
    finally:
        if ready is not None:
            for server in ready.all_servers:
                server.stop()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
