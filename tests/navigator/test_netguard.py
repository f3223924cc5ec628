"""The SSRF guard: address spellings, allowlists, redirects, DNS rebinding, TLS with a
pinned address, size and time limits. Every connection made here goes to 127.0.0.1 or
127.0.0.2 on this machine; names are resolved by a replaced resolver, never by DNS."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from posturio.navigator import netguard
from posturio.navigator.netguard import (
    Allowlist,
    FetchError,
    GuardedFetcher,
    GuardedTransport,
    ResponseTooLarge,
    TooManyRedirects,
    URLRefused,
    blocked_reason,
    check_url,
    fetch,
    parse_ip_literal,
)

# --- addresses, no network at all ---------------------------------------------------------

REFUSED = [
    "http://127.0.0.1/",
    "http://127.255.255.254:8080/",
    "http://localhost./",  # resolved by the fake resolver below
    "http://2130706433/",  # decimal
    "http://0x7f000001/",  # hex
    "http://0x7f.1/",  # hex + short form
    "http://017700000001/",  # octal
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://0/",
    "http://0.0.0.0/",
    "http://10.0.0.8/",
    "http://172.16.4.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:a9fe:a9fe]/",  # mapped metadata address
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {"localhost": ["127.0.0.1", "::1"]}

    def resolve(host: str, port: int) -> list[netguard.IPAddress]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in table[host]]

    monkeypatch.setattr(netguard, "resolve_host", resolve)
    return table


@pytest.mark.parametrize("url", REFUSED)
def test_private_and_disguised_addresses_are_refused(url: str, fake_dns) -> None:
    # httpx itself rejects some spellings (0177.0.0.1) as invalid: refused all the same.
    with pytest.raises(URLRefused, match=r"refused|invalid URL"):
        check_url(url)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.65535", "10.1.255.255"),
        ("3232235777", "192.168.1.1"),
        ("8.8.8.8", "8.8.8.8"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ],
)
def test_numeric_spellings_are_read_like_inet_aton(spelling: str, address: str) -> None:
    assert parse_ip_literal(spelling) == ipaddress.ip_address(address)


@pytest.mark.parametrize("name", ["example.com", "1.2.3.4.5", "08.1.1.1", "256.1.1.1", "0xg.1"])
def test_names_are_not_mistaken_for_addresses(name: str) -> None:
    assert parse_ip_literal(name) is None


def test_public_addresses_pass(fake_dns) -> None:
    assert blocked_reason(ipaddress.ip_address("8.8.8.8")) is None
    assert blocked_reason(ipaddress.ip_address("2606:4700:4700::1111")) is None
    assert check_url("https://93.184.216.34/doc").addresses == (
        ipaddress.ip_address("93.184.216.34"),
    )
    fake_dns["docs.example.com"] = ["93.184.216.34", "2606:2800:220:1::"]
    checked = check_url("https://Docs.Example.com./guide")
    assert checked.host == "docs.example.com" and checked.port == 443
    assert len(checked.addresses) == 2


def test_names_resolving_to_private_addresses_are_refused(fake_dns) -> None:
    fake_dns["intranet.example.com"] = ["10.20.30.40"]
    fake_dns["mixed.example.com"] = ["93.184.216.34", "192.168.0.10"]
    fake_dns["mapped.example.com"] = ["::ffff:169.254.169.254"]
    for host in ("intranet.example.com", "mixed.example.com", "mapped.example.com"):
        with pytest.raises(URLRefused, match="resolves to"):
            check_url(f"http://{host}/")
    with pytest.raises(FetchError, match="could not resolve"):
        check_url("http://nowhere.invalid/")


def test_allowlist_hosts_and_networks(fake_dns) -> None:
    fake_dns["wiki.corp.example"] = ["10.1.2.3"]
    fake_dns["git.corp.example"] = ["10.9.9.9"]
    fake_dns["db.other.example"] = ["10.1.2.4"]
    allow = Allowlist.parse(["wiki.corp.example", "172.16.0.0/12", "*.lab.example", ""])
    assert check_url("http://wiki.corp.example/", allow).addresses[0].exploded == "10.1.2.3"
    assert check_url("http://172.20.0.5:8080/", allow).port == 8080
    fake_dns["x.lab.example"] = ["192.168.7.7"]
    check_url("http://x.lab.example/", allow)
    with pytest.raises(URLRefused):
        check_url("http://git.corp.example/", allow)  # same domain, not listed
    with pytest.raises(URLRefused):
        check_url("http://db.other.example/", Allowlist.parse(["10.1.2.3/32"]))
    assert check_url("http://db.other.example/", Allowlist.parse(["10.1.0.0/16"]))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "http://user:pw@8.8.8.8/",
        "http:///x",
    ],
)
def test_schemes_and_credentials(url: str) -> None:
    with pytest.raises(URLRefused):
        check_url(url)


# --- against real local servers -----------------------------------------------------------


class _Server:
    def __init__(
        self, host: str, port: int, routes: dict[str, Callable], tls: ssl.SSLContext | None = None
    ) -> None:
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(f"{self.headers.get('host')}{self.path}")
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                route(self, server)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _reply(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None, length: bool = True
):
    def handle(handler: BaseHTTPRequestHandler, server: _Server) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value.format(port=server.port))
        if length:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return handle


def _redirect(location: str):
    return _reply(b"", 302, {"Location": location})


def _stream_forever(handler: BaseHTTPRequestHandler, server: _Server) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.end_headers()  # no length: the body runs until the connection closes
    try:
        for _ in range(4096):
            handler.wfile.write(b"x" * 1024)
    except OSError:
        pass


def _slow(handler: BaseHTTPRequestHandler, server: _Server) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "10")
    handler.end_headers()
    handler.wfile.write(b"12345")
    handler.wfile.flush()
    time.sleep(2)
    try:
        handler.wfile.write(b"67890")
    except OSError:
        pass


ROUTES = {
    "/page": _reply(
        b"<html><body><p>public page</p></body></html>",
        headers={"Content-Type": "text/html; charset=utf-8"},
    ),
    "/secret": _reply(b"internal admin data"),
    "/to-loopback": _redirect("http://127.0.0.1:{port}/secret"),
    "/to-decimal": _redirect("http://2130706433:{port}/secret"),
    "/to-hex": _redirect("http://0x7f.1:{port}/secret"),
    "/to-mapped": _redirect("http://[::ffff:127.0.0.1]:{port}/secret"),
    "/to-internal-name": _redirect("http://internal.test:{port}/secret"),
    "/to-metadata": _redirect("http://169.254.169.254/latest/meta-data/"),
    "/to-file": _redirect("file:///etc/passwd"),
    "/relative": _redirect("/page"),
    "/hop1": _redirect("/hop2"),
    "/hop2": _redirect("/hop3"),
    "/hop3": _redirect("/page"),
    "/loop": _redirect("/loop"),
    "/big-declared": _reply(b"y" * 300_000),
    "/big-streamed": _stream_forever,
    "/slow": _slow,
}


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server("127.0.0.1", 0, ROUTES)
    yield srv
    srv.close()


@pytest.fixture
def public(server: _Server, fake_dns) -> Callable[[str], str]:
    """'public.test' stands for a public site: the operator allowlists it (it is really
    127.0.0.1), while 127.0.0.1 itself stays refused."""
    fake_dns["public.test"] = ["127.0.0.1"]
    fake_dns["internal.test"] = ["127.0.0.1"]
    server.hits.clear()
    return lambda path: f"http://public.test:{server.port}{path}"


ALLOW_PUBLIC = Allowlist.parse(["public.test"])


def test_fetch_allowed_page(public, server: _Server) -> None:
    result = fetch(public("/page"), allow=ALLOW_PUBLIC)
    assert result.ok and result.status_code == 200
    assert b"public page" in result.content
    assert result.media_type == "text/html; charset=utf-8"
    assert server.hits == [f"public.test:{server.port}/page"]  # Host header kept


def test_direct_loopback_is_refused_before_connecting(server: _Server, fake_dns) -> None:
    server.hits.clear()
    for url in (
        f"http://127.0.0.1:{server.port}/secret",
        f"http://2130706433:{server.port}/secret",
        f"http://localhost:{server.port}/secret",
    ):
        with pytest.raises(URLRefused):
            fetch(url)
    assert server.hits == []


@pytest.mark.parametrize(
    "path",
    ["/to-loopback", "/to-decimal", "/to-hex", "/to-mapped", "/to-internal-name", "/to-metadata"],
)
def test_redirect_to_private_address_is_refused(path: str, public, server: _Server) -> None:
    with pytest.raises(URLRefused, match="refused"):
        fetch(public(path), allow=ALLOW_PUBLIC)
    assert server.hits == [f"public.test:{server.port}{path}"]  # /secret never reached


def test_redirect_to_other_scheme_is_refused(public) -> None:
    with pytest.raises(URLRefused, match="scheme 'file'"):
        fetch(public("/to-file"), allow=ALLOW_PUBLIC)


def test_redirects_are_followed_within_limit(public, server: _Server) -> None:
    result = fetch(public("/hop1"), allow=ALLOW_PUBLIC)
    assert result.url == public("/page")
    assert result.redirects == (public("/hop2"), public("/hop3"), public("/page"))
    assert fetch(public("/relative"), allow=ALLOW_PUBLIC).url == public("/page")
    with pytest.raises(TooManyRedirects):
        fetch(public("/hop1"), allow=ALLOW_PUBLIC, max_redirects=2)
    server.hits.clear()
    with pytest.raises(TooManyRedirects):
        fetch(public("/loop"), allow=ALLOW_PUBLIC)
    assert len(server.hits) == 6  # the first request and five redirects


def test_size_cap(public) -> None:
    with pytest.raises(ResponseTooLarge, match="300,000 bytes"):
        fetch(public("/big-declared"), allow=ALLOW_PUBLIC, max_bytes=100_000)
    with pytest.raises(ResponseTooLarge, match="over the limit"):
        fetch(public("/big-streamed"), allow=ALLOW_PUBLIC, max_bytes=200_000)
    assert len(fetch(public("/big-declared"), allow=ALLOW_PUBLIC).content) == 300_000


def test_timeouts(public) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch(public("/slow"), allow=ALLOW_PUBLIC, read_timeout=0.3)
    with pytest.raises(FetchError, match="timed out"):
        fetch(public("/slow"), allow=ALLOW_PUBLIC, total_timeout=0.5, read_timeout=0.2)
    assert time.monotonic() - started < 2


def test_transport_refuses_unchecked_connections(server: _Server) -> None:
    # The guard sits in the transport's network backend, so even a plain httpx client
    # (redirects followed by httpx itself) cannot reach a private address through it.
    server.hits.clear()
    with httpx.Client(transport=GuardedTransport(), trust_env=False) as client:
        with pytest.raises(URLRefused):
            client.get(f"http://127.0.0.1:{server.port}/secret")
    assert server.hits == []


def test_dns_rebinding_cannot_slip_between_check_and_connect(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rebind.test answers 127.0.0.2 (allowlisted) on the first lookup and 127.0.0.1
    (refused) afterwards. Whatever the fetcher does, the server on 127.0.0.1 must never
    see a request: the address that was checked is the address that is dialled."""
    try:
        other = _Server("127.0.0.2", server.port, {"/secret": _reply(b"allowed host")})
    except OSError:
        pytest.skip("127.0.0.2 is not usable here")
    try:
        lookups: list[str] = []

        def rebinding(host: str, port: int) -> list[netguard.IPAddress]:
            lookups.append(host)
            return [ipaddress.ip_address("127.0.0.2" if len(lookups) == 1 else "127.0.0.1")]

        monkeypatch.setattr(netguard, "resolve_host", rebinding)
        allow = Allowlist.parse(["127.0.0.2/32"])
        url = f"http://rebind.test:{server.port}/secret"
        server.hits.clear()

        # 1. Fetching alone: one lookup, checked and dialled together.
        result = fetch(url, allow=allow)
        assert result.content == b"allowed host"
        assert lookups == ["rebind.test"]

        # 2. A check first (passes, 127.0.0.2), then the fetch: the connection's own
        #    lookup now says 127.0.0.1 and is refused instead of being trusted.
        lookups.clear()
        assert str(check_url(url, allow).addresses[0]) == "127.0.0.2"
        with pytest.raises(URLRefused):
            fetch(url, allow=allow)
        assert server.hits == []
    finally:
        other.close()


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_tls_verifies_the_host_name_while_dialling_the_pinned_address(tmp_path, fake_dns) -> None:
    cert_pem, key_pem = _self_signed("secure.test")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    tls = _Server("127.0.0.1", 0, {"/doc": _reply(b"over tls")}, tls=server_ctx)
    try:
        fake_dns["secure.test"] = ["127.0.0.1"]
        fake_dns["impostor.test"] = ["127.0.0.1"]
        trust = ssl.create_default_context(cadata=cert_pem.decode())
        allow = Allowlist.parse(["127.0.0.1/32"])
        result = fetch(f"https://secure.test:{tls.port}/doc", allow=allow, verify=trust)
        assert result.content == b"over tls"
        assert tls.hits == [f"secure.test:{tls.port}/doc"]
        # The certificate is checked against the name in the URL, not the address.
        with pytest.raises(FetchError, match="could not fetch"):
            fetch(f"https://impostor.test:{tls.port}/doc", allow=allow, verify=trust)
    finally:
        tls.close()


def test_one_fetcher_serves_many_urls(public, server: _Server) -> None:
    with GuardedFetcher(ALLOW_PUBLIC) as fetcher:
        for _ in range(3):
            assert fetcher.fetch(public("/page")).ok
    assert len(server.hits) == 3
