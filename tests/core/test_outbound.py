import contextlib
import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asgiref.sync import async_to_sync

from apps.core.models import SystemSettings
from apps.core.outbound import (
    OutboundBlocked,
    OutboundError,
    afetch,
    async_outbound_client,
    check_url,
    fetch,
    is_public_address,
    outbound_client,
)

pytestmark = pytest.mark.django_db


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/redirect"):
            target = self.path.split("to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/big":
            body = b"x" * 5000
        elif self.path == "/slow":
            time.sleep(1.0)
            body = b"late"
        else:
            body = b"hello from " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client gave up (timeout test)
            self.wfile.write(body)


@pytest.fixture(scope="module")
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.1.2.3/v1",
        "http://192.168.0.10/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:0a00:0001::]/",
        "http://224.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://localhost:8000/",
    ],
)
def test_check_url_refuses_private_and_special_addresses(url):
    with pytest.raises(OutboundBlocked) as info:
        check_url(url, field="base_url")
    assert info.value.code == "url_not_allowed"
    assert info.value.status == 400
    assert info.value.details[0]["field"] == "base_url"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "http://u:p@8.8.8.8/", "nope"],
)
def test_check_url_refuses_other_schemes_and_credentials(url):
    with pytest.raises(OutboundBlocked):
        check_url(url)


def test_public_literal_addresses_pass():
    check_url("https://8.8.8.8/v1")
    check_url("https://[2606:4700:4700::1111]/")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::808:808", True),
        ("64:ff9b::7f00:1", False),
        ("192.0.2.1", False),
        ("255.255.255.255", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_hostname_resolving_to_private_address_is_refused(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "internal.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(OutboundBlocked) as info:
        check_url("https://internal.example.com/v1")
    assert "10.0.0.7" in info.value.message


def test_dns_change_after_the_check_is_caught_at_connect(monkeypatch):
    """Rebinding: the name resolved to a public address when saved, to loopback later."""
    answers = iter(["93.184.216.34", "127.0.0.1"])
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == "rebind.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    check_url("http://rebind.example.com/")  # saved while public
    with outbound_client() as client, pytest.raises(OutboundBlocked):
        client.get("http://rebind.example.com/")


def test_allow_listed_host_is_reached(local_server, allow_loopback):
    check_url(f"http://{local_server}/")
    response = fetch(f"http://{local_server}/ping")
    assert (response.status_code, response.text) == (200, "hello from /ping")


def test_system_settings_allow_list_accepts_cidr(local_server):
    with pytest.raises(OutboundBlocked):
        fetch(f"http://{local_server}/ping")
    SystemSettings.objects.update_or_create(
        pk=1, defaults={"outbound_allowed_hosts": ["127.0.0.0/8"]}
    )
    assert fetch(f"http://{local_server}/ping").text == "hello from /ping"


def test_redirect_to_a_private_address_is_refused(local_server, settings):
    port = local_server.split(":")[1]
    settings.OUTBOUND_ALLOWED_HOSTS = ["localhost"]  # the name only, not 127.0.0.1
    url = f"http://localhost:{port}/redirect?to=http://127.0.0.1:{port}/final"
    with pytest.raises(OutboundBlocked) as info:
        fetch(url)
    assert "127.0.0.1" in info.value.message
    # The guarded client catches it too when it follows redirects itself.
    with outbound_client(follow_redirects=True) as client, pytest.raises(OutboundBlocked):
        client.get(url)


def test_allowed_redirect_is_followed(local_server, allow_loopback):
    url = f"http://{local_server}/redirect?to=/final"
    response = fetch(url)
    assert (response.status_code, response.text) == (200, "hello from /final")
    assert response.url == f"http://{local_server}/final"


def test_response_size_and_time_are_capped(local_server, allow_loopback):
    with pytest.raises(OutboundError) as info:
        fetch(f"http://{local_server}/big", max_bytes=1000)
    assert info.value.code == "outbound_failed"
    assert "1000 bytes" in info.value.message
    with pytest.raises(OutboundError) as info:
        fetch(f"http://{local_server}/slow", timeout=0.3)
    assert "did not answer within 0.3 seconds" in info.value.message


def test_connection_refused_is_a_readable_error(allow_loopback):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(OutboundError) as info:
        fetch(f"http://127.0.0.1:{port}/")
    assert "could not be reached" in info.value.message


def test_async_fetch_and_client_apply_the_same_checks(local_server, allow_loopback, settings):
    async def run():
        ok = await afetch(f"http://{local_server}/async")
        settings.OUTBOUND_ALLOWED_HOSTS = []
        async with async_outbound_client() as client:
            with pytest.raises(OutboundBlocked):
                await client.get(f"http://{local_server}/again")
        return ok

    assert async_to_sync(run)().text == "hello from /async"
