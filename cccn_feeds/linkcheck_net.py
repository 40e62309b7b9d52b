"""The link checker's network layer: the address guard and per-host politeness.

The guard refuses addresses that are not globally routable. It is applied twice: to an
address literal in every URL before a request (so a redirect hop to ``http://10.0.0.1/``
is refused without a connection), and inside the connection itself, which resolves the
host name with ``getaddrinfo``, checks every address and connects only to a checked one.
TLS still uses the host name for SNI and certificate checks and the Host header is
unchanged, so pinning the address costs nothing, while a DNS answer that changes between
a check and the connection (DNS rebinding) cannot slip through: there is no second lookup.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(Exception):
    """A request was refused by the address policy; nothing was sent."""


def _embedded(addr: IPAddress) -> list[IPAddress]:
    """The address itself plus any IPv4 address an IPv6 form carries (mapped, 6to4, ...)."""
    forms: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            forms.append(addr.ipv4_mapped)
        if addr.sixtofour is not None:
            forms.append(addr.sixtofour)
        if addr.teredo is not None:
            forms.extend(addr.teredo)
        if addr in _NAT64:
            forms.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return forms


def _routable(addr: IPAddress) -> bool:
    """Whether one address is public: global and none of the special-purpose kinds."""
    return bool(
        addr.is_global
        and not (
            addr.is_private
            or addr.is_loopback
            or addr.is_link_local
            or addr.is_multicast
            or addr.is_reserved
            or addr.is_unspecified
        )
    )


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses the checker may connect to."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, networks: Iterable[str]) -> AddressPolicy:
        """The policy for a list of CIDR ranges exempt from the guard."""
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def allows(self, address: str | IPAddress) -> bool:
        """True when the address is public or inside an allowed range, in every form."""
        addr = (
            ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
        )
        forms = _embedded(addr)
        if any(form in net for form in forms for net in self.allow if form.version == net.version):
            return True
        return all(_routable(form) for form in forms)

    def check_host(self, host: str) -> None:
        """Refuse an address literal that is not allowed (host names are checked on connect)."""
        try:
            addr = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return
        if not self.allows(addr):
            raise BlockedAddress(f"{addr} is not a public address")


def _pinned_socket(conn: HTTPConnection, policy: AddressPolicy) -> socket.socket:
    """Resolve once, refuse unchecked addresses, connect to a checked one."""
    host = conn._dns_host  # the name urllib3 would resolve
    try:
        infos = socket.getaddrinfo(host, conn.port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    allowed = [info for info in infos if policy.allows(str(info[4][0]))]
    if not allowed:
        shown = ", ".join(sorted({str(info[4][0]) for info in infos}))
        raise BlockedAddress(f"{conn.host} resolves to {shown}, not a public address")
    error: OSError | None = None
    for family, kind, proto, _name, sockaddr in allowed:
        sock = socket.socket(family, kind, proto)
        try:
            for opt in conn.socket_options or ():
                sock.setsockopt(*opt)
            timeout = conn.timeout
            if isinstance(timeout, int | float):
                sock.settimeout(timeout)
            sock.connect(sockaddr)
            peer = sock.getpeername()[0]
            if not policy.allows(str(peer)):  # pragma: no cover - belt and braces
                raise BlockedAddress(f"{conn.host} connected to {peer}, not a public address")
            return sock
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(conn, f"connection to {conn.host} timed out") from exc
        except OSError as exc:
            sock.close()
            error = exc
    raise NewConnectionError(conn, f"failed to connect: {error}")


class _GuardedHTTPConnection(HTTPConnection):
    policy: AddressPolicy = AddressPolicy()

    def _new_conn(self) -> socket.socket:
        return _pinned_socket(self, self.policy)


class _GuardedHTTPSConnection(HTTPSConnection):
    policy: AddressPolicy = AddressPolicy()

    def _new_conn(self) -> socket.socket:
        return _pinned_socket(self, self.policy)


class GuardedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections resolve, check and pin the address themselves."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        self._policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Create the pool manager with guarded connection classes."""
        super().init_poolmanager(*args, **kwargs)
        attrs = {"policy": self._policy}
        http_conn = type("PinnedHTTPConnection", (_GuardedHTTPConnection,), attrs)
        https_conn = type("PinnedHTTPSConnection", (_GuardedHTTPSConnection,), attrs)
        http_pool = type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
        https_pool = type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}


def make_session(
    policy: AddressPolicy, *, hosts: int, per_host: int, user_agent: str
) -> requests.Session:
    """One worker's session: guarded adapters, no proxies or netrc, pools sized to match.

    A worker has one request in flight at a time, so ``per_host`` connections per host
    is already generous; ``hosts`` pools keep a keep-alive connection to every host.
    """
    session = requests.Session()
    session.trust_env = False  # a proxy would hide the address actually connected
    session.headers["User-Agent"] = user_agent
    for prefix in ("http://", "https://"):
        session.mount(
            prefix,
            GuardedAdapter(
                policy,
                pool_connections=max(1, hosts),
                pool_maxsize=max(1, per_host),
                max_retries=0,
            ),
        )
    return session


T = TypeVar("T")


@dataclass(slots=True)
class _Host:
    active: int = 0
    next_start: float = 0.0
    peak: int = 0


@dataclass
class HostGate(Generic[T]):
    """Per-host politeness shared by all workers, and the queue of work they take from.

    A request to a host starts only while fewer than ``per_host`` requests to it are in
    flight and ``min_interval`` seconds after the previous start there. Workers take the
    next job whose host can start now (the host with the most jobs left first), so a busy
    host never holds a worker while another host is free.
    """

    per_host: int
    min_interval: float
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _hosts: dict[str, _Host] = field(default_factory=dict)
    _queues: dict[str, deque[T]] = field(default_factory=dict)

    def put(self, host: str, job: T) -> None:
        """Queue a job whose first request goes to ``host``."""
        with self._cond:
            self._queues.setdefault(host, deque()).append(job)
            self._cond.notify()

    def _wait_time(self, host: str, now: float) -> float:
        """Seconds until a request to ``host`` may start (infinite while it is full)."""
        state = self._hosts.setdefault(host, _Host())
        if state.active >= self.per_host:
            return float("inf")
        return max(0.0, state.next_start - now)

    def _start(self, host: str, now: float) -> None:
        state = self._hosts[host]
        state.active += 1
        state.peak = max(state.peak, state.active)
        state.next_start = now + self.min_interval

    def take(self) -> tuple[str, T] | None:
        """The next job with a started slot on its host; None when the queue is empty."""
        with self._cond:
            while True:
                if not self._queues:
                    return None
                now = time.monotonic()
                best: str | None = None
                wake = float("inf")
                for host, queue in self._queues.items():
                    wait = self._wait_time(host, now)
                    if wait <= 0 and (best is None or len(queue) > len(self._queues[best])):
                        best = host
                    wake = min(wake, wait)
                if best is not None:
                    queue = self._queues[best]
                    job = queue.popleft()
                    if not queue:
                        del self._queues[best]
                    self._start(best, now)
                    return best, job
                self._cond.wait(None if wake == float("inf") else wake)

    def acquire(self, host: str, deadline: float) -> bool:
        """Start a request to ``host``, waiting for a slot until ``deadline`` (monotonic)."""
        with self._cond:
            while True:
                now = time.monotonic()
                wait = self._wait_time(host, now)
                if wait <= 0:
                    self._start(host, now)
                    return True
                if now >= deadline:
                    return False
                self._cond.wait(min(wait, deadline - now))

    def release(self, host: str) -> None:
        """A request to ``host`` has finished."""
        with self._cond:
            self._hosts[host].active -= 1
            self._cond.notify_all()

    def defer(self, host: str, seconds: float) -> None:
        """Start no request to ``host`` for ``seconds`` (a Retry-After answer)."""
        with self._cond:
            state = self._hosts.setdefault(host, _Host())
            state.next_start = max(state.next_start, time.monotonic() + seconds)

    def peaks(self) -> dict[str, int]:
        """The highest number of requests in flight seen per host."""
        with self._cond:
            return {host: state.peak for host, state in self._hosts.items()}
