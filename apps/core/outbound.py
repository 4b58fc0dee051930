"""The outbound-request guard: the one way the server reaches a URL a user typed.

Every request to a user-supplied URL (provider base URL, MCP server, URL import, skill
import, webhook, HTTP tool) goes through this module:

- `check_url(url)` validates a URL when it is saved (scheme, host, resolved addresses);
- `outbound_client()` / `async_outbound_client()` are httpx2 clients (httpx's API) whose
  transport resolves the host and re-checks the addresses on EVERY new connection (so a
  DNS change after the save, or a redirect to another host, is caught), then connects to
  the checked address itself (no second lookup, so no DNS rebinding) while TLS still
  verifies and sends SNI for the original host name. Response bodies are capped in
  bytes. These are what the openai and anthropic SDKs get as `http_client`;
- `fetch()` / `afetch()` do one bounded request (bytes, time, redirects, each hop checked).

An address is refused unless it is globally routable: private, loopback, link-local
(cloud metadata at 169.254.169.254 included), CGNAT, multicast, reserved, unspecified,
and IPv6 forms embedding one of those (IPv4-mapped, NAT64, 6to4, Teredo). Because the check
is made on the resolved address, numeric host spellings (`2130706433`, `0x7f000001`,
`0177.0.0.1`) are refused like `127.0.0.1`. An operator allow-lists exceptions (a local
Ollama or vLLM) with host names, IP addresses or CIDR networks in
`settings.OUTBOUND_ALLOWED_HOSTS` (environment) or `SystemSettings.outbound_allowed_hosts`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import anyio
import httpcore
import httpcore2
import httpx
import httpx2
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.core.exceptions import ApplicationError, ValidationFailed
from apps.core.selectors import system_settings_get

_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?)+$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}


class OutboundBlocked(ValidationFailed):
    """The URL points somewhere the server may not reach (400 url_not_allowed)."""

    code = "url_not_allowed"
    default_message = "This URL points to an address the server may not reach."


class OutboundError(ApplicationError):
    """An allowed outbound request failed: timeout, too large, connection error."""

    code = "outbound_failed"
    status = 502
    default_message = "The remote server could not be reached."


def validate_allowlist_entry(entry: str) -> None:
    """An allow-list entry is a host name, an IP address, or an IP network in CIDR form."""
    try:
        ipaddress.ip_network(entry, strict=False)
        return
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(entry):
        raise ValidationFailed(
            f"{entry!r} is not a host name, IP address or CIDR network.",
            field="outbound_allowed_hosts",
        )


# --- address policy -----------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Whether `ip` is a globally routable unicast address (and embeds no other)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.scope_id:
            return False
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip.is_loopback:
        return False
    if ip.is_link_local or ip.is_private:
        return False
    return bool(ip.is_global)


@dataclass(frozen=True)
class _AllowList:
    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> _AllowList:
        hosts: set[str] = set()
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in entries:
            entry = str(raw).strip().lower().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, ip: IPAddress | None) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        if ip is None:
            return False
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            c in net for c in candidates for net in self.networks if c.version == net.version
        )


def _settings_allowlist() -> _AllowList:
    return _AllowList.parse(getattr(settings, "OUTBOUND_ALLOWED_HOSTS", []) or [])


def _system_allowlist() -> _AllowList:
    return _AllowList.parse(system_settings_get().outbound_allowed_hosts or [])


def _blocked(host: str, ip: IPAddress) -> OutboundBlocked:
    shown = host if host == str(ip) else f"{host} ({ip})"
    return OutboundBlocked(
        f"{shown} is a private, loopback, link-local or reserved address; an operator must "
        "allow-list it (OUTBOUND_ALLOWED_HOSTS or the system settings) before the server "
        "may reach it."
    )


def _refused(host: str, addresses: list[IPAddress], system: _AllowList | None) -> IPAddress | None:
    """The first address neither public nor allow-listed, or None when all may be reached."""
    env = _settings_allowlist()
    for ip in addresses:
        if is_public_address(ip) or env.allows(host, ip):
            continue
        if system is None:
            system = _system_allowlist()
        if not system.allows(host, ip):
            return ip
    return None


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = _literal_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError(f"The host {host!r} could not be resolved.") from exc
    return _unique_addresses(info[4][0] for info in infos)


async def _aresolve(host: str, port: int) -> list[IPAddress]:
    literal = _literal_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError(f"The host {host!r} could not be resolved.") from exc
    return _unique_addresses(info[4][0] for info in infos)


def _unique_addresses(raw: Iterable[Any]) -> list[IPAddress]:
    seen: list[IPAddress] = []
    for value in raw:
        ip = ipaddress.ip_address(str(value).split("%")[0])
        if ip not in seen:
            seen.append(ip)
    return seen


def _split_url(url: str, field: str) -> tuple[str, int]:
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, TypeError) as exc:
        raise OutboundBlocked(f"{url!r} is not a valid URL.", field=field) from exc
    if parsed.scheme not in ("http", "https"):
        raise OutboundBlocked("Only http and https URLs are allowed.", field=field)
    host = parsed.host
    if not host:
        raise OutboundBlocked("The URL has no host.", field=field)
    if parsed.userinfo:
        raise OutboundBlocked("URLs with credentials in them are not allowed.", field=field)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return host, port


def check_url(url: str, *, field: str = "url") -> None:
    """Refuse (OutboundBlocked, 400 url_not_allowed) a URL that is not http(s) or whose host
    resolves to an address that is not public and not allow-listed. Also raises
    OutboundError when the host cannot be resolved. Synchronous (reads system settings)."""
    host, port = _split_url(url, field)
    try:
        addresses = _resolve(host, port)
    except OutboundError as exc:
        raise OutboundBlocked(exc.message, field=field) from exc
    bad = _refused(host, addresses, None)
    if bad is not None:
        error = _blocked(host, bad)
        raise OutboundBlocked(error.message, field=field)


async def acheck_url(url: str, *, field: str = "url") -> None:
    """`check_url` for async code."""
    await sync_to_async(check_url)(url, field=field)


# --- guarded transports ---------------------------------------------------------------
#
# The openai, anthropic and mcp SDKs are built on `httpx2` (a fork of httpx with the same
# API), so the guarded transports are httpx2 transports: one stack for every caller.


def _check_addresses_sync(host: str, addresses: list[IPAddress]) -> None:
    bad = _refused(host, addresses, None)
    if bad is not None:
        raise _blocked(host, bad)


async def _check_addresses_async(host: str, addresses: list[IPAddress]) -> None:
    env = _settings_allowlist()
    if all(is_public_address(ip) or env.allows(host, ip) for ip in addresses):
        return
    # Only now is the database's allow-list needed.
    system = await sync_to_async(_system_allowlist)()
    bad = _refused(host, addresses, system)
    if bad is not None:
        raise _blocked(host, bad)


def _too_large(max_bytes: int) -> OutboundError:
    return OutboundError(f"The response is larger than the {max_bytes} bytes allowed.")


def _build_transports(hx: Any, hc: Any) -> tuple[Any, Any]:
    """Guarded sync and async transport classes for one httpx flavour (`hx`, `hc`)."""

    class GuardedSyncBackend(hc.NetworkBackend):  # type: ignore[misc,name-defined]
        """Resolves, checks, and connects to the checked address (no second lookup)."""

        def __init__(self) -> None:
            self._inner = hc.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> Any:
            addresses = _resolve(host, port)
            _check_addresses_sync(host, addresses)
            last: Exception | None = None
            for ip in addresses:
                try:
                    return self._inner.connect_tcp(
                        str(ip), port, timeout, local_address, socket_options
                    )
                except (hc.ConnectError, hc.ConnectTimeout) as exc:
                    last = exc
            assert last is not None
            raise last

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    class GuardedAsyncBackend(hc.AsyncNetworkBackend):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self._inner = hc.AnyIOBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> Any:
            addresses = await _aresolve(host, port)
            await _check_addresses_async(host, addresses)
            last: Exception | None = None
            for ip in addresses:
                try:
                    return await self._inner.connect_tcp(
                        str(ip), port, timeout, local_address, socket_options
                    )
                except (hc.ConnectError, hc.ConnectTimeout) as exc:
                    last = exc
            assert last is not None
            raise last

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    class CappedStream(hx.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, max_bytes: int) -> None:
            self._inner = inner
            self._max = max_bytes

        def __iter__(self) -> Iterator[bytes]:
            seen = 0
            for chunk in self._inner:
                seen += len(chunk)
                if seen > self._max:
                    raise _too_large(self._max)
                yield chunk

        def close(self) -> None:
            self._inner.close()

    class AsyncCappedStream(hx.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, max_bytes: int) -> None:
            self._inner = inner
            self._max = max_bytes

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in self._inner:
                seen += len(chunk)
                if seen > self._max:
                    raise _too_large(self._max)
                yield chunk

        async def aclose(self) -> None:
            await self._inner.aclose()

    def _declared_too_large(response: Any, max_bytes: int) -> bool:
        declared = response.headers.get("content-length", "")
        return bool(declared.isdigit() and int(declared) > max_bytes)

    ssl_context: list[Any] = []

    def shared_ssl_context() -> Any:
        # Building a verifying SSL context costs ~50 ms; every client shares one.
        if not ssl_context:
            ssl_context.append(hx.create_ssl_context(verify=True, trust_env=False))
        return ssl_context[0]

    class GuardedTransport(hx.HTTPTransport):  # type: ignore[misc,name-defined]
        """Checks every connection's address and caps response bodies."""

        def __init__(self, *, max_bytes: int | None = None, **kwargs: Any) -> None:
            kwargs.setdefault("verify", shared_ssl_context())
            super().__init__(trust_env=False, **kwargs)
            self._pool._network_backend = GuardedSyncBackend()
            self._max_bytes = max_bytes

        def handle_request(self, request: Any) -> Any:
            response = super().handle_request(request)
            if self._max_bytes is not None:
                if _declared_too_large(response, self._max_bytes):
                    response.close()
                    raise _too_large(self._max_bytes)
                response.stream = CappedStream(response.stream, self._max_bytes)
            return response

    class AsyncGuardedTransport(hx.AsyncHTTPTransport):  # type: ignore[misc,name-defined]
        def __init__(self, *, max_bytes: int | None = None, **kwargs: Any) -> None:
            kwargs.setdefault("verify", shared_ssl_context())
            super().__init__(trust_env=False, **kwargs)
            self._pool._network_backend = GuardedAsyncBackend()
            self._max_bytes = max_bytes

        async def handle_async_request(self, request: Any) -> Any:
            response = await super().handle_async_request(request)
            if self._max_bytes is not None:
                if _declared_too_large(response, self._max_bytes):
                    await response.aclose()
                    raise _too_large(self._max_bytes)
                response.stream = AsyncCappedStream(response.stream, self._max_bytes)
            return response

    return GuardedTransport, AsyncGuardedTransport


GuardedTransport, AsyncGuardedTransport = _build_transports(httpx2, httpcore2)


def _client_options(
    timeout: float | httpx2.Timeout, headers: Mapping[str, str] | None, follow_redirects: bool
) -> dict[str, Any]:
    """What every guarded client shares. Environment proxies are ignored (trust_env=False)
    so they cannot bypass the check; `timeout` bounds connect (at most 10 s) and each read."""
    if not isinstance(timeout, httpx2.Timeout):
        timeout = httpx2.Timeout(timeout, connect=min(float(timeout), 10.0))
    return {
        "timeout": timeout,
        "headers": dict(headers or {}),
        "follow_redirects": follow_redirects,
        "max_redirects": 5,
        "trust_env": False,
    }


def outbound_client(
    *,
    timeout: float | httpx2.Timeout = 30.0,
    max_bytes: int | None = None,
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = False,
) -> httpx2.Client:
    """A guarded client (every connection checked, bodies capped, environment proxies
    ignored so they cannot bypass the check). `timeout` bounds connect and each read.

    It is an `httpx2` client, the httpx fork the openai, anthropic and mcp SDKs require for
    `http_client=`; its API is httpx's."""
    return httpx2.Client(
        transport=GuardedTransport(max_bytes=max_bytes),
        **_client_options(timeout, headers, follow_redirects),
    )


def async_outbound_client(
    *,
    timeout: float | httpx2.Timeout = 30.0,
    max_bytes: int | None = None,
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = False,
    limits: httpx2.Limits | None = None,
) -> httpx2.AsyncClient:
    """The async twin of `outbound_client` (an `httpx2.AsyncClient`). `limits` sizes its
    connection pool (httpx's default: 100 connections, 20 kept alive for 5 s)."""
    return httpx2.AsyncClient(
        transport=AsyncGuardedTransport(
            max_bytes=max_bytes, **({"limits": limits} if limits is not None else {})
        ),
        **_client_options(timeout, headers, follow_redirects),
    )


# --- one bounded request --------------------------------------------------------------


@dataclass(frozen=True)
class OutboundResponse:
    """The whole (bounded) answer of `fetch`."""

    status_code: int
    headers: httpx2.Headers
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers), errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def _charset(headers: httpx2.Headers) -> str:
    match = re.search(r"charset=([\w-]+)", headers.get("content-type", ""), re.I)
    return match.group(1) if match else "utf-8"


def _next_hop(response: httpx2.Response, url: str, method: str) -> tuple[str, str] | None:
    if response.status_code not in _REDIRECT_STATUSES or "location" not in response.headers:
        return None
    target = urljoin(url, response.headers["location"])
    if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
        method = "GET"
    return target, method


def _translate(exc: httpx2.HTTPError, url: str, timeout: float) -> OutboundError:
    host = httpx2.URL(url).host
    if isinstance(exc, httpx2.TimeoutException):
        return OutboundError(f"{host} did not answer within {timeout:g} seconds.")
    return OutboundError(f"{host} could not be reached ({type(exc).__name__}).")


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
    json: Any = None,
    timeout: float = 15.0,
    max_bytes: int = 5_000_000,
    follow_redirects: bool = True,
    max_redirects: int = 5,
) -> OutboundResponse:
    """One guarded request: each hop's URL is checked, the body is capped at `max_bytes`
    and the whole exchange at `timeout` seconds. Raises OutboundBlocked or OutboundError."""
    deadline = time.monotonic() + timeout
    check_url(url)
    with outbound_client(timeout=timeout, max_bytes=max_bytes, headers=headers) as client:
        for _ in range(max_redirects + 1):
            try:
                with client.stream(method, url, content=content, json=json) as response:
                    hop = _next_hop(response, url, method) if follow_redirects else None
                    if hop is None:
                        body = bytearray()
                        for chunk in response.iter_bytes():
                            body += chunk
                            if time.monotonic() > deadline:
                                raise OutboundError(
                                    f"{response.url.host} did not answer within {timeout:g} "
                                    "seconds."
                                )
                        return OutboundResponse(
                            response.status_code, response.headers, bytes(body), str(url)
                        )
            except httpx2.HTTPError as exc:
                raise _translate(exc, url, timeout) from exc
            url, new_method = hop
            if new_method != method:
                method, content, json = new_method, None, None
            check_url(url)
            if time.monotonic() > deadline:
                raise OutboundError(f"The request did not complete within {timeout:g} seconds.")
    raise OutboundError(f"More than {max_redirects} redirects.")


async def afetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
    json: Any = None,
    timeout: float = 15.0,
    max_bytes: int = 5_000_000,
    follow_redirects: bool = True,
    max_redirects: int = 5,
) -> OutboundResponse:
    """The async twin of `fetch`."""
    deadline = time.monotonic() + timeout
    await acheck_url(url)
    async with async_outbound_client(
        timeout=timeout, max_bytes=max_bytes, headers=headers
    ) as client:
        for _ in range(max_redirects + 1):
            try:
                async with client.stream(method, url, content=content, json=json) as response:
                    hop = _next_hop(response, url, method) if follow_redirects else None
                    if hop is None:
                        body = bytearray()
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if time.monotonic() > deadline:
                                raise OutboundError(
                                    f"{response.url.host} did not answer within {timeout:g} "
                                    "seconds."
                                )
                        return OutboundResponse(
                            response.status_code, response.headers, bytes(body), str(url)
                        )
            except httpx2.HTTPError as exc:
                raise _translate(exc, url, timeout) from exc
            url, new_method = hop
            if new_method != method:
                method, content, json = new_method, None, None
            await acheck_url(url)
            if time.monotonic() > deadline:
                raise OutboundError(f"The request did not complete within {timeout:g} seconds.")
    raise OutboundError(f"More than {max_redirects} redirects.")


# The same guard for plain `httpx` (not the httpx2 fork): for SDKs that build
# `httpx.Request`s themselves (a2a-sdk).
_, AsyncHttpxGuardedTransport = _build_transports(httpx, httpcore)


def async_outbound_httpx_client(
    *,
    timeout: float = 30.0,
    max_bytes: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """The guarded async client as a plain `httpx.AsyncClient` (every connection checked,
    bodies capped, environment proxies ignored, no redirects followed)."""
    return httpx.AsyncClient(
        transport=AsyncHttpxGuardedTransport(max_bytes=max_bytes),
        timeout=httpx.Timeout(timeout, connect=min(float(timeout), 10.0)),
        headers=dict(headers or {}),
        follow_redirects=False,
        trust_env=False,
    )
