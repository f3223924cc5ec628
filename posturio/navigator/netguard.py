"""SSRF guard for Navigator's URL sources (web pages, sitemaps, remote files).

A URL source makes the server fetch what a tenant member typed. Without a guard that is
a way into the operator's network: http://127.0.0.1:6379/, the cloud metadata service at
169.254.169.254, an intranet admin page. So every address the fetcher connects to must
be public, unless the operator allowlisted that host or network.

What makes this hard, and how it is handled:
- Address spellings. "2130706433", "0x7f.1", "017700000001" and "127.1" are all
  127.0.0.1 to the C resolver (inet_aton rules); "::ffff:127.0.0.1" and 6to4 / NAT64
  addresses embed an IPv4 address. `parse_ip_literal` reads every such form and
  `blocked_reason` looks through the IPv6 wrappers.
- Redirects. A public page may redirect to http://127.0.0.1/. `GuardedFetcher` follows
  redirects itself, one hop at a time, and every hop is checked like the first.
- DNS rebinding. A name can resolve to a public address when checked and to 127.0.0.1 a
  moment later when the HTTP client resolves it again to connect. Here the check and the
  connection are one step: the fetcher's transport has its own network backend, whose
  connect_tcp() resolves the name once, checks every address it got, and then dials one
  of exactly those checked addresses (a literal IP, so nothing resolves it again). TLS
  still runs against the original host name (SNI and certificate verification), because
  the URL is never rewritten; only the socket's destination is pinned. Connections are
  pooled per host name, and a pooled connection was checked when it was opened.
- Proxies. An HTTP proxy resolves names itself and would undo the pinning, so the
  client ignores proxy environment variables (trust_env=False).
"""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

__all__ = [
    "Allowlist",
    "CheckedURL",
    "FetchError",
    "FetchResult",
    "GuardedFetcher",
    "GuardedTransport",
    "ResponseTooLarge",
    "TooManyRedirects",
    "URLRefused",
    "blocked_reason",
    "check_host",
    "check_url",
    "fetch",
    "parse_ip_literal",
    "resolve_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
_ALLOWED_SCHEMES = ("http", "https")


class FetchError(Exception):
    """A URL that could not be fetched; `reason` is recorded as the document's failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class URLRefused(FetchError):
    """The URL, or an address it resolves to, is not allowed (SSRF guard)."""


class TooManyRedirects(FetchError):
    pass


class ResponseTooLarge(FetchError):
    pass


# ---------------------------------------------------------------------------------------
# Addresses


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, or None if it is a name.

    Accepts what the C library's inet_aton accepts, because that is what getaddrinfo (and
    so any HTTP client) would connect to: one to four dot-separated parts, each decimal,
    octal (leading 0) or hex (0x), the last part filling the remaining bytes."""
    host = urllib.parse.unquote(host).strip().rstrip(".").strip("[]")
    if not host:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        lowered = part.lower()
        try:
            if lowered.startswith("0x"):
                value = int(lowered[2:], 16) if len(lowered) > 2 else 0
            elif len(lowered) > 1 and lowered.startswith("0"):
                value = int(lowered, 8)
            elif lowered.isdigit():
                value = int(lowered)
            else:
                return None
        except ValueError:
            return None
        values.append(value)
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = 0
    for v in leading:
        number = number << 8 | v
    number = number << (8 * (4 - len(leading))) | last
    return ipaddress.IPv4Address(number)


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _IPV4_COMPATIBLE or any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why a server must not connect to `ip` on a tenant's behalf, or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = blocked_reason(inner)
            if reason is not None:
                return f"{reason} (IPv4 {inner} inside IPv6)"
    checks = (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
        ("is_site_local", "site-local"),
    )
    for attribute, label in checks:
        if getattr(ip, attribute, False):
            return label
    # is_global also rules out ranges none of the flags name (100.64.0.0/10, the
    # carrier-grade NAT space, for one).
    if not ip.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class Allowlist:
    """Hosts and networks the operator trusts (an intranet wiki at 10.1.2.3, say).

    A host entry is an exact name, or ".example.org" / "*.example.org" for every name
    under it; an allowlisted host may resolve to any address. A network entry (CIDR or a
    single address) admits those addresses whatever name leads to them."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith(("*.", ".")):
                suffixes.append("." + entry.lstrip("*."))
            else:
                hosts.add(_normalize_host(entry))
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def allows_host(self, host: str) -> bool:
        host = _normalize_host(host)
        return host in self.hosts or any(host.endswith(s) for s in self.suffixes)

    def allows_address(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


_EMPTY_ALLOWLIST = Allowlist()


def _normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".").strip("[]")
    try:
        # Compare IDNs in their ASCII form, as they appear on the wire.
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return host


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """All addresses a name resolves to (the system resolver: /etc/hosts, then DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def check_host(host: str, port: int, allow: Allowlist | None = None) -> list[IPAddress]:
    """The addresses to connect to for host:port, every one of them checked.

    Raises URLRefused if any address is not public (a name that resolves to one public
    and one private address is refused: the client could pick either), or FetchError if
    the name does not resolve."""
    allow = allow or _EMPTY_ALLOWLIST
    name = _normalize_host(host)
    if not name:
        raise URLRefused("the URL has no host")
    literal = parse_ip_literal(name)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            # Looked up through the module on each call, so tests can replace it.
            addresses = resolve_host(name, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"could not resolve host {name!r}: {exc}") from None
        if not addresses:
            raise FetchError(f"could not resolve host {name!r}")
        if allow.allows_host(name):
            return addresses
    for ip in addresses:
        if allow.allows_address(ip):
            continue
        reason = blocked_reason(ip)
        if reason is not None:
            shown = name if literal is None else f"{name!r}"
            via = "" if str(ip) == name else f" resolves to {ip}, which"
            raise URLRefused(
                f"refused: {shown}{via} is a {reason} address "
                "(an operator can allowlist trusted internal hosts)"
            )
    return addresses


@dataclass(frozen=True)
class CheckedURL:
    url: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def _parse_url(url: str | httpx.URL) -> httpx.URL:
    """Syntax-level checks that need no DNS: scheme, credentials, host."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise URLRefused(f"invalid URL: {exc}") from None
    if parsed.scheme not in _ALLOWED_SCHEMES:
        raise URLRefused(f"refused: scheme {parsed.scheme or '(none)'!r}, only http and https")
    if parsed.userinfo:
        # user@host URLs are a classic way to disguise the real host from a reader.
        raise URLRefused("refused: credentials in the URL")
    if not parsed.host:
        raise URLRefused("invalid URL: no host")
    return parsed


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def check_url(url: str, allow: Allowlist | None = None) -> CheckedURL:
    """Validate a URL up front (e.g. when a source is proposed), resolving its host.

    Fetching does not rely on this answer: GuardedFetcher checks again at connect time,
    which is what defeats DNS rebinding."""
    parsed = _parse_url(url)
    port = _port(parsed)
    addresses = check_host(parsed.host, port, allow)
    return CheckedURL(str(parsed), _normalize_host(parsed.host), port, tuple(addresses))


# ---------------------------------------------------------------------------------------
# Fetching


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks and dials in one step, so the address checked is the one used."""

    def __init__(self, allow: Allowlist) -> None:
        self._allow = allow
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = check_host(host, port, self._allow)
        failure: Exception | None = None
        for ip in addresses:
            try:
                return self._inner.connect_tcp(
                    str(ip),  # a literal: nothing downstream resolves the name again
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise URLRefused("refused: unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose every TCP connection goes through the SSRF check."""

    def __init__(
        self,
        allow: Allowlist | None = None,
        *,
        verify: Any = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=20, max_keepalive_connections=10)
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx has no public hook for the network backend, so the pool is rebuilt with
        # ours (httpx is pinned; test_netguard fails loudly if this ever stops working).
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(allow or _EMPTY_ALLOWLIST),
        )


@dataclass(frozen=True)
class FetchResult:
    url: str  # final URL, after redirects
    status_code: int
    headers: Mapping[str, str]
    content: bytes
    redirects: tuple[str, ...] = field(default=())

    @property
    def media_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class GuardedFetcher:
    """GETs URLs for Navigator's connectors with the SSRF guard, redirect re-checks,
    timeouts and a size cap. Reuse one per crawl: it pools connections."""

    def __init__(
        self,
        allow: Allowlist | None = None,
        *,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        total_timeout: float = 60.0,
        user_agent: str = "PosturioNavigator/0.1",
        verify: Any = True,
    ) -> None:
        self.allow = allow or _EMPTY_ALLOWLIST
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes
        self.total_timeout = total_timeout
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        self._client = httpx.Client(
            transport=GuardedTransport(self.allow, verify=verify),
            trust_env=False,  # no proxies from the environment (see module docstring)
            follow_redirects=False,  # redirects are followed below, each hop re-checked
            timeout=self._timeout,
            headers={
                "user-agent": user_agent,
                # Not br or zstd: their ratios make the decoded-size cap loosest.
                "accept-encoding": "gzip, deflate",
            },
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GuardedFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch(self, url: str, *, headers: Mapping[str, str] | None = None) -> FetchResult:
        deadline = time.monotonic() + self.total_timeout
        current = _parse_url(url)
        redirects: list[str] = []
        while True:
            self._precheck_literal(current)
            response = self._send(current, headers, deadline)
            try:
                if response.has_redirect_location:
                    if len(redirects) >= self.max_redirects:
                        raise TooManyRedirects(
                            f"more than {self.max_redirects} redirects, last to {current}"
                        )
                    location = response.headers["location"]
                    try:
                        target = current.join(location)
                    except (httpx.InvalidURL, ValueError) as exc:
                        raise FetchError(f"invalid redirect location {location!r}: {exc}") from None
                    current = _parse_url(target)
                    redirects.append(str(current))
                    continue
                content = self._read(response, deadline)
                return FetchResult(
                    url=str(current),
                    status_code=response.status_code,
                    headers=dict(response.headers),
                    content=content,
                    redirects=tuple(redirects),
                )
            finally:
                response.close()

    def _precheck_literal(self, url: httpx.URL) -> None:
        # A literal address is refused before any connection attempt (and before any
        # pooled connection to a name could be considered); names are checked on connect.
        if parse_ip_literal(url.host) is not None:
            check_host(url.host, _port(url), self.allow)

    def _send(
        self, url: httpx.URL, headers: Mapping[str, str] | None, deadline: float
    ) -> httpx.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"timed out after {self.total_timeout:g} s fetching {url}")
        timeout = httpx.Timeout(
            connect=min(self._timeout.connect or remaining, remaining),
            read=min(self._timeout.read or remaining, remaining),
            write=min(self._timeout.write or remaining, remaining),
            pool=min(self._timeout.pool or remaining, remaining),
        )
        request = self._client.build_request("GET", url, headers=headers, timeout=timeout)
        try:
            return self._client.send(request, stream=True)
        except FetchError:
            raise
        except httpx.TimeoutException:
            raise FetchError(f"timed out fetching {url}") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"could not fetch {url}: {exc or type(exc).__name__}") from None

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ResponseTooLarge(
                f"response too large: {int(declared):,} bytes, the limit is {self.max_bytes:,}"
            )
        body = bytearray()
        try:
            # Decoded bytes are counted, so a small gzip bomb is stopped too.
            for part in response.iter_bytes():
                body += part
                if len(body) > self.max_bytes:
                    raise ResponseTooLarge(
                        f"response too large: over the limit of {self.max_bytes:,} bytes"
                    )
                # The read timeout bounds each wait; this bounds a slow drip in total.
                if time.monotonic() > deadline:
                    raise FetchError(
                        f"timed out after {self.total_timeout:g} s reading {response.url}"
                    )
        except httpx.TimeoutException:
            raise FetchError(f"timed out reading {response.url}") from None
        except httpx.HTTPError as exc:
            raise FetchError(
                f"could not read {response.url}: {exc or type(exc).__name__}"
            ) from None
        return bytes(body)


def fetch(url: str, *, allow: Allowlist | None = None, **options: Any) -> FetchResult:
    """One guarded GET; for many URLs keep a GuardedFetcher instead."""
    with GuardedFetcher(allow, **options) as fetcher:
        return fetcher.fetch(url)
