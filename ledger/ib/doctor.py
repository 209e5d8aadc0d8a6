"""``ibledger doctor``: why can't my program reach TWS / IB Gateway?

The classic failure is WSL: TWS runs on Windows, the strategy in WSL2 connects to ``127.0.0.1`` (the
Linux VM, where nothing listens), or to the Windows host address that TWS does not trust, in which case
TWS resets the socket right after accepting it and the client libraries only time out (with both
libraries the reset shows only through ``ib.client.apiError``). The doctor tells these apart:

* ``REFUSED``            nothing listens on host:port (ECONNREFUSED);
* ``CONNECT_TIMEOUT``    no TCP answer at all (firewall dropping it, wrong address);
* ``UNREACHABLE``        no route / bad host name;
* ``RESET``              TWS accepted and reset the connection: the peer address is not trusted;
* ``CLOSED``             accepted and closed before any answer (same remedies as RESET);
* ``HANDSHAKE_TIMEOUT``  something accepted but never answered the API handshake (API not enabled,
                         not the API port, or TWS waiting on a dialog);
* ``API_ERROR``          the handshake worked but the API session did not (client id in use ...);
* ``ACCOUNT_MISMATCH``   the server manages other accounts than the configured one;
* ``OK``                 server version, connection time, managed accounts, server time.

The first probe is a raw socket handshake (``API\\0`` + the version range, answered by one frame with
the server version and connection time): it never starts an API session, so it is harmless on any
port. Only when it succeeds does the doctor connect with the real client library (read-only) to read
the accounts and the time, listening on ``apiError`` and ``errorEvent`` to name the real cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from ledger.ib.settings import LIVE_PORTS, PAPER_PORTS, ConnectError, check_account, connect_client, how_to_set

CLIENT_VERSION_RANGE = b"v157..176"
DEFAULT_PORTS = (7497, 4002, 7496, 4001)
# The doctor's own client id when none is given: a spare one, never a session's default
# (ledger.core.events.SIMULATOR_CLIENT_ID) -- probing must not kick out a running strategy.
PROBE_CLIENT_ID = 999
LOOPBACK = "127.0.0.1"

OK = "OK"
REFUSED = "REFUSED"
CONNECT_TIMEOUT = "CONNECT_TIMEOUT"
UNREACHABLE = "UNREACHABLE"
RESET = "RESET"
CLOSED = "CLOSED"
HANDSHAKE_TIMEOUT = "HANDSHAKE_TIMEOUT"
API_ERROR = "API_ERROR"
ACCOUNT_MISMATCH = "ACCOUNT_MISMATCH"

EXIT_CODES: dict[str, int] = {
    OK: 0,
    REFUSED: 3,
    RESET: 4,
    CLOSED: 4,
    HANDSHAKE_TIMEOUT: 5,
    CONNECT_TIMEOUT: 6,
    UNREACHABLE: 6,
    API_ERROR: 7,
    ACCOUNT_MISMATCH: 8,
}
# When no target is OK, the most telling problem decides the exit code and the headline.
_SEVERITY = (ACCOUNT_MISMATCH, API_ERROR, RESET, CLOSED, HANDSHAKE_TIMEOUT, CONNECT_TIMEOUT, UNREACHABLE, REFUSED)

TWS_API_SETTINGS = (
    "TWS: File/Edit → Global Configuration → API → Settings (IB Gateway: Configure → Settings → API → Settings)"
)


class Environment(msgspec.Struct, kw_only=True):
    wsl: bool = False
    wsl_distro: str = ""
    wsl2: bool = False
    kernel: str = ""
    default_gateway: str = ""  # from /proc/net/route: under WSL2 (NAT) the Windows host
    nameserver: str = ""  # from /etc/resolv.conf: under WSL2 usually the Windows host too
    windows_host: str = ""  # the proposed address of the Windows machine ("" if not WSL)
    candidates: list[str] = msgspec.field(default_factory=list)


class Probe(msgspec.Struct, kw_only=True):
    host: str
    port: int
    status: str
    detail: str = ""
    local_address: str = ""  # the address the server sees us connect from (the one to trust)
    server_version: int = 0
    connection_time: str = ""
    accounts: list[str] = msgspec.field(default_factory=list)
    server_time: str = ""
    elapsed_ms: float = 0.0
    advice: list[str] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == OK


class DoctorReport(msgspec.Struct, kw_only=True):
    environment: Environment
    probes: list[Probe]
    status: str
    exit_code: int
    summary: str
    advice: list[str] = msgspec.field(default_factory=list)


# --- environment -----------------------------------------------------------------------------------


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def parse_default_gateway(route_text: str) -> str:
    """The default route's gateway from ``/proc/net/route`` (hex, little-endian), or ""."""
    for line in route_text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 3 or parts[1] != "00000000":
            continue
        try:
            gw = int(parts[2], 16)
        except ValueError:
            continue
        if gw:
            return socket.inet_ntoa(struct.pack("<I", gw))
    return ""


def parse_nameserver(resolv_text: str) -> str:
    for line in resolv_text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            return parts[1]
    return ""


def detect_environment(
    *,
    proc_version: str | Path = "/proc/version",
    route: str | Path = "/proc/net/route",
    resolv: str | Path = "/etc/resolv.conf",
    env: Mapping[str, str] | None = None,
) -> Environment:
    env = os.environ if env is None else env
    kernel = _read(proc_version).strip()
    distro = env.get("WSL_DISTRO_NAME", "")
    wsl = "microsoft" in kernel.lower() or bool(distro)
    wsl2 = wsl and ("wsl2" in kernel.lower() or "microsoft-standard" in kernel.lower())
    gateway = parse_default_gateway(_read(route))
    nameserver = parse_nameserver(_read(resolv))
    windows_host = ""
    if wsl:
        # WSL2 NAT: the default gateway is the Windows host's vEthernet (WSL) address. The resolv.conf
        # nameserver is the same host unless DNS tunneling (10.255.255.254) or a custom resolv.conf.
        if gateway:
            windows_host = gateway
        elif nameserver and not nameserver.startswith(("127.", "10.255.255.254")):
            windows_host = nameserver
    candidates = [LOOPBACK]
    for addr in (windows_host, nameserver if wsl else ""):
        if addr and addr not in candidates and not addr.startswith(("127.", "10.255.255.254")):
            candidates.append(addr)
    return Environment(
        wsl=wsl,
        wsl_distro=distro,
        wsl2=wsl2,
        kernel=kernel,
        default_gateway=gateway,
        nameserver=nameserver,
        windows_host=windows_host,
        candidates=candidates,
    )


# --- raw socket probe ------------------------------------------------------------------------------


def handshake_bytes(version_range: bytes = CLIENT_VERSION_RANGE) -> bytes:
    return b"API\0" + struct.pack(">I", len(version_range)) + version_range


def _local_address_for(host: str, port: int) -> str:
    """The source address the kernel picks to reach host (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.connect((host, port or 9))
            return u.getsockname()[0]
    except OSError:
        return ""


def probe_socket(
    host: str, port: int, *, timeout: float = 3.0, source_address: str | None = None
) -> Probe:
    """TCP connect + API handshake only; never starts an API session."""
    t0 = time.perf_counter()

    def done(status: str, detail: str, **kw: object) -> Probe:
        return Probe(
            host=host, port=port, status=status, detail=detail,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 1), **kw,  # type: ignore[arg-type]
        )

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return done(UNREACHABLE, f"cannot resolve host {host!r}: {exc.strerror}")
    family, stype, proto, _, addr = infos[0]
    sock = socket.socket(family, stype, proto)
    try:
        sock.settimeout(timeout)
        if source_address:
            sock.bind((source_address, 0))
        sock.connect(addr)
    except ConnectionRefusedError:
        sock.close()
        return done(REFUSED, f"connection refused: nothing listens on {host}:{port}")
    except ConnectionResetError:
        local = source_address or _local_address_for(host, port)
        sock.close()
        return done(
            RESET, f"connection reset by peer: {host}:{port} reset the connection from {local} at once",
            local_address=local,
        )
    except TimeoutError:
        sock.close()
        return done(CONNECT_TIMEOUT, f"no answer to the TCP connection within {timeout:g}s")
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return done(UNREACHABLE, f"{host}:{port} unreachable: {exc.strerror}")
        return done(UNREACHABLE, f"cannot connect to {host}:{port}: {exc}")
    with sock:
        local = sock.getsockname()[0]
        buf = b""
        try:
            sock.sendall(handshake_bytes())
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(4096)
                if not chunk:
                    return done(
                        CLOSED,
                        f"{host}:{port} accepted the connection from {local} and closed it before answering",
                        local_address=local,
                    )
                buf += chunk
                if len(buf) >= 4:
                    (size,) = struct.unpack_from(">I", buf)
                    if len(buf) >= 4 + size:
                        break
        except (ConnectionResetError, BrokenPipeError):
            return done(
                RESET,
                f"connection reset by peer: {host}:{port} accepted the connection from {local} and reset it",
                local_address=local,
            )
        except TimeoutError:
            got = f" (got {len(buf)} bytes)" if buf else ""
            return done(
                HANDSHAKE_TIMEOUT,
                f"{host}:{port} accepted the connection but did not answer the API handshake within "
                f"{timeout:g}s{got}",
                local_address=local,
            )
        (size,) = struct.unpack_from(">I", buf)
        fields = buf[4 : 4 + size].split(b"\0")
        try:
            version = int(fields[0])
        except (ValueError, IndexError):
            return done(
                HANDSHAKE_TIMEOUT, f"{host}:{port} answered something that is not the TWS API: {buf[:40]!r}",
                local_address=local,
            )
        conn_time = fields[1].decode(errors="replace") if len(fields) > 1 else ""
        return done(
            OK, f"API handshake OK (server version {version})", local_address=local,
            server_version=version, connection_time=conn_time,
        )


# --- API session (real client) ---------------------------------------------------------------------


async def probe_api(host: str, port: int, client_id: int, *, timeout: float = 5.0) -> Probe:
    """Connect read-only with the real client; report accounts and server time, or the real cause."""
    from ledger.ib.library import IB

    t0 = time.perf_counter()
    ib = IB()

    def ms() -> float:
        return round((time.perf_counter() - t0) * 1000, 1)

    try:
        await connect_client(ib, host, port, client_id, timeout=timeout, readonly=True)
    except ConnectError as exc:
        status = {"reset": RESET, "refused": REFUSED}.get(exc.kind, API_ERROR)
        return Probe(host=host, port=port, status=status, detail=f"API session failed: {exc}", elapsed_ms=ms())
    try:
        accounts = [a for a in ib.managedAccounts() if a]
        server_time = ""
        with contextlib.suppress(Exception):
            t = await asyncio.wait_for(ib.reqCurrentTimeAsync(), timeout)
            server_time = t.isoformat() if t is not None else ""
        version = ib.client.serverVersion()
        return Probe(
            host=host, port=port, status=OK, detail=f"API session OK: server version {version}",
            server_version=version, accounts=accounts, server_time=server_time, elapsed_ms=ms(),
        )
    finally:
        ib.disconnect()


# --- advice ----------------------------------------------------------------------------------------


def advise(p: Probe, envi: Environment) -> list[str]:
    port_name = LIVE_PORTS.get(p.port) or PAPER_PORTS.get(p.port) or "not a standard TWS/Gateway port"
    out: list[str] = []
    loop_on_wsl = envi.wsl and p.host.startswith("127.")
    if p.status == REFUSED:
        out.append(
            f"Nothing listens on {p.host}:{p.port} ({port_name}). Is TWS / IB Gateway running and logged in? "
            f"In {TWS_API_SETTINGS}: tick 'Enable ActiveX and Socket Clients' and check 'Socket port' "
            "(7497 TWS paper, 4002 IB Gateway paper, 7496 / 4001 live)."
        )
        if loop_on_wsl:
            out.append(
                "You are in WSL: 127.0.0.1 is the Linux VM, not Windows. Connect to the Windows host "
                + (f"{envi.windows_host} " if envi.windows_host else "")
                + f"instead ({how_to_set('host')})."
            )
    elif p.status in (RESET, CLOSED):
        who = p.local_address or "this machine's address"
        out.append(
            f"TWS accepted the TCP connection and dropped it: it does not trust {who}. In {TWS_API_SETTINGS}: "
            f"untick 'Allow connections from localhost only', and add {who} to 'Trusted IPs' "
            "(then press OK / Apply; restart TWS if it still refuses)."
        )
        out.append(
            "The client libraries only report this as a TimeoutError from connect(); the real cause is "
            "'[Errno 104] Connection reset by peer' on ib.client.apiError."
        )
        if envi.wsl:
            out.append(
                f"Under WSL2 the address TWS sees changes when WSL restarts; trusting {who} works until then "
                "(or use WSL mirrored networking and 127.0.0.1)."
            )
    elif p.status == HANDSHAKE_TIMEOUT:
        out.append(
            f"Something listens on {p.host}:{p.port} but does not speak the TWS API: either this is not the API "
            f"socket port, or the API is not enabled. In {TWS_API_SETTINGS}: tick 'Enable ActiveX and Socket "
            "Clients' and compare 'Socket port'. TWS may also be waiting on a dialog (an 'accept incoming "
            "connection' prompt): look at the TWS window."
        )
    elif p.status == CONNECT_TIMEOUT:
        out.append(
            f"No TCP answer from {p.host}:{p.port}: a firewall drops it or the address is wrong. On Windows allow "
            f"inbound TCP {p.port} (Windows Defender Firewall → inbound rule for the WSL network)."
        )
    elif p.status == UNREACHABLE:
        out.append(f"{p.host} is not reachable from here; check the address ({how_to_set('host')}).")
    elif p.status == API_ERROR:
        if "already in use" in p.detail:
            out.append("The client id is already in use: pick another one with " + how_to_set("client_id") + ".")
        else:
            out.append("The handshake worked but the API session did not: see the detail; TWS's API log helps.")
    elif p.status == ACCOUNT_MISMATCH:
        out.append(p.detail)
    if p.status == OK and p.port in LIVE_PORTS:
        out.append(f"{p.port} is a LIVE port: ibledger refuses it unless --live and IBLEDGER_ALLOW_LIVE=yes.")
    return out


# --- the whole check -------------------------------------------------------------------------------


def run_doctor(
    *,
    host: str | None = None,
    port: int | None = None,
    client_id: int | None = None,
    account: str | None = None,
    timeout: float = 3.0,
    source_address: str | None = None,
    environment: Environment | None = None,
    api_check: bool = True,
) -> DoctorReport:
    """Probe the configured target (or every candidate host × usual port) and explain the result."""
    envi = environment or detect_environment()
    hosts: Sequence[str] = [host] if host else envi.candidates
    ports: Sequence[int] = [port] if port else DEFAULT_PORTS
    targets = [(h, p) for h in hosts for p in ports]
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        probes = list(
            pool.map(lambda t: probe_socket(t[0], t[1], timeout=timeout, source_address=source_address), targets)
        )
    explicit = bool(host and port)
    for i, pr in enumerate(probes):
        if pr.status != OK or not api_check:
            continue
        if not explicit and pr.port in LIVE_PORTS:
            continue  # found by scanning: a handshake on a live port is enough, no API session
        api = asyncio.run(probe_api(pr.host, pr.port, client_id if client_id is not None else PROBE_CLIENT_ID,
                                    timeout=max(timeout, 2.0)))
        api.local_address = pr.local_address
        api.connection_time = pr.connection_time
        if api.status == OK and account:
            from ledger.ib.settings import ConnectionSettings, SettingsError

            try:
                check_account(
                    ConnectionSettings(host=pr.host, port=pr.port, client_id=0, account=account, mode="live",
                                       origin={"account": "the configured account"}),
                    api.accounts,
                )
            except SettingsError as exc:
                api.status = ACCOUNT_MISMATCH
                api.detail = str(exc).replace("; disconnected", "")
        probes[i] = api
    for pr in probes:
        pr.advice = advise(pr, envi)

    oks = [p for p in probes if p.ok]
    if oks:
        best = oks[0]
        status = OK
        summary = (
            f"OK: {best.host}:{best.port} server version {best.server_version}, accounts "
            f"{', '.join(best.accounts) or '-'}, server time {best.server_time or best.connection_time or '-'}"
        )
        advice = list(best.advice)
        if not explicit:
            advice.insert(0, f"Use --host {best.host} --port {best.port} (or IBKR_HOST / IBKR_PORT).")
    else:
        worst = min(probes, key=lambda p: _SEVERITY.index(p.status) if p.status in _SEVERITY else 99)
        status = worst.status
        summary = f"{status}: {worst.detail}"
        advice = list(worst.advice)
        if envi.wsl and envi.windows_host and all(h.startswith("127.") for h in hosts):
            advice.append(f"From WSL try the Windows host: ibledger doctor --host {envi.windows_host}")
    return DoctorReport(
        environment=envi, probes=probes, status=status, exit_code=EXIT_CODES.get(status, 1),
        summary=summary, advice=advice,
    )
