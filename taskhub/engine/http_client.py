"""Keep-alive HTTP/1.1 connections for ``exchange``: the wire, and nothing of tasks.

Why not aiohttp's client: a request through ``ClientSession`` costs ~150 us of Python
(a request object, header multidicts, a payload object and a task to write the body,
timer handles, traces), more than the target on loopback spends answering it, and the
trigger loop is one thread. Here a request is one ``transport.write`` of the head and
body, and the response is parsed by llhttp (``httptools``, uvicorn's parser) in C.

What it does and nothing more: one connection per request at a time, kept alive per
(scheme, host, port) while the server allows it and for at most ``keepalive_s``; at
most ``limit`` connections open; TLS with the system's default verification; every
host name resolved through the caller's ``resolve`` (``exchange``'s SSRF guard), whose
checked addresses are the only ones connected to and are cached for ``dns_ttl_s``.
No redirects, cookies, proxies, compression or pipelining. A body is read up to a
limit; a response cut there, a ``HEAD`` response, an upgrade or anything unexpected
closes its connection instead of returning it. Timeouts are the caller's, except the
connect timeout, which :class:`ConnectTimeout` reports apart.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import httptools
from yarl import URL

__all__ = [
    "ConnectFailed",
    "ConnectTimeout",
    "Disconnected",
    "HTTPClientError",
    "IncompleteBody",
    "InvalidResponse",
    "Pool",
    "ResolveFailed",
    "Response",
    "TLSFailed",
]

#: Methods that send no ``Content-Length: 0`` without a body (as browsers and aiohttp).
_BODILESS_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: Host names whose answers are kept before the expired ones are dropped.
DNS_CACHE_ENTRIES: Final = 4096

#: ``resolve(host, port)``: the addresses to connect to, every one already checked.
Resolve = Callable[[str, int], Awaitable[list[str]]]


class HTTPClientError(Exception):
    """What went wrong with one request, before or after it was sent."""


class ResolveFailed(HTTPClientError):
    """The host name did not resolve, or resolved to an address the guard refuses."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ConnectTimeout(HTTPClientError):
    """No connection (and TLS handshake) within the connect timeout."""


class ConnectFailed(HTTPClientError):
    """Every address refused or failed the connection."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class TLSFailed(HTTPClientError):
    """The TLS handshake failed; ``certificate``: the server's certificate was refused."""

    def __init__(self, ssl_error: ssl.SSLError) -> None:
        super().__init__(str(ssl_error))
        self.ssl_error = ssl_error
        self.certificate = isinstance(ssl_error, ssl.SSLCertVerificationError)


class Disconnected(HTTPClientError):
    """The server closed the connection before the whole response head arrived."""


class InvalidResponse(HTTPClientError):
    """The bytes received are not an HTTP/1.x response."""


class IncompleteBody(HTTPClientError):
    """The connection ended before the body its head announced."""


class Response:
    """A response whose head has arrived; :meth:`read` waits for the body and hands the
    connection back (it must be called, also to give up on the body)."""

    __slots__ = ("_connection", "_release", "retry_after", "status")

    def __init__(self, connection: _Connection, status: int, retry_after: str | None) -> None:
        self._connection = connection
        self._release: Callable[[], None] | None = None
        self.status = status
        self.retry_after = retry_after

    async def read(self) -> tuple[bytes, bool]:
        """The body up to the request's limit, and whether there was more (then the
        connection is closed, not reused)."""
        try:
            return await self._connection.body()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class _Connection(asyncio.Protocol):
    """One connection, one exchange at a time; its parser callbacks run on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.reusable = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._active = False  # a request was sent and its response has not ended
        self._head: asyncio.Future[Response] | None = None
        self._done: asyncio.Future[None] | None = None
        self._limit = 0
        self._head_only = False
        self._status = 0
        self._retry_after: str | None = None
        self._framed = False  # Content-Length or chunked: the body's end is known
        self._body = bytearray()
        self._truncated = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or not self._active:  # nothing was asked: out of turn
            self._close()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(InvalidResponse("the server switched protocols"))
        except httptools.HttpParserError as error:
            self._fail(InvalidResponse(str(error)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.reusable = False
        if not self._active:
            return
        self._active = False
        if self._head is not None and not self._head.done():
            self._head.set_exception(Disconnected("closed without a response"))
        elif self._done is not None and not self._done.done():
            if self._framed:
                self._done.set_exception(IncompleteBody("closed before the end of the body"))
            else:  # a body delimited by the connection's end, as HTTP/1.0 allows
                self._done.set_result(None)

    # -- httptools callbacks (during feed_data)

    def on_message_begin(self) -> None:
        if not self._active:  # a second response to one request
            self._close()
        self._status = 0
        self._retry_after = None
        self._framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"retry-after":
            self._retry_after = value.decode("latin-1")
        elif lower in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        if not self._active or self._parser is None:
            return
        self._status = self._parser.get_status_code()
        if 100 <= self._status < 200:
            return  # an interim response: the final one follows
        if self._head is not None and not self._head.done():
            self._head.set_result(Response(self, self._status, self._retry_after))
        if self._head_only:  # a HEAD response announces a body it does not send
            self._finish(reusable=False)

    def on_body(self, body: bytes) -> None:
        if not self._active:
            return
        room = self._limit - len(self._body)
        if len(body) > room:
            self._body += body[:room]
            self._truncated = True
            self._finish(reusable=False)
        else:
            self._body += body

    def on_message_complete(self) -> None:
        if not self._active or self._parser is None or 100 <= self._status < 200:
            return
        self._finish(reusable=self._parser.should_keep_alive())

    # -- the exchange

    def send(self, data: bytes, limit: int, head_only: bool) -> asyncio.Future[Response]:
        """Write one request; the future is its response's head."""
        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self._active = True
        self._head = self._loop.create_future()
        self._done = self._loop.create_future()
        self._limit = limit
        self._head_only = head_only
        self._body = bytearray()
        self._truncated = False
        self.reusable = False
        self.transport.write(data)
        return self._head

    async def body(self) -> tuple[bytes, bool]:
        assert self._done is not None
        await self._done
        return bytes(self._body), self._truncated

    def _finish(self, reusable: bool) -> None:
        self._active = False
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
        self.reusable = reusable and not self.lost
        if not self.reusable:
            self._close()

    def _fail(self, failure: HTTPClientError) -> None:
        self._active = False
        if self._head is not None and not self._head.done():
            self._head.set_exception(failure)
        elif self._done is not None and not self._done.done():
            self._done.set_exception(failure)
        self._close()

    def _close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def abandon(self) -> None:
        """The caller gave up (its deadline): the connection is mid-exchange, so closed."""
        self._active = False
        for waiter in (self._head, self._done):
            if waiter is not None and not waiter.done():
                waiter.cancel()
        self._close()


class Pool:
    """Connections per (scheme, host, port); create and use it on one event loop."""

    def __init__(
        self,
        resolve: Resolve,
        *,
        limit: int,
        keepalive_s: float,
        dns_ttl_s: float,
        user_agent: str,
    ) -> None:
        self._resolve = resolve
        self._limit = max(1, limit)
        self._keepalive_s = keepalive_s
        self._dns_ttl_s = dns_ttl_s
        self._user_agent = user_agent
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open = 0
        self._freed = asyncio.Event()
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._tls: ssl.SSLContext | None = None
        self._sweeping: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes | None,
        connect_timeout_s: float,
        max_body_bytes: int,
    ) -> Response:
        """Send one request and wait for its response's head (the caller's deadline
        around it; cancelling closes the connection). Its body is read up to
        ``max_body_bytes``."""
        data = self.encode(method, url, headers, body)
        return await self.send(method, url, data, connect_timeout_s, max_body_bytes)

    async def send(
        self,
        method: str,
        url: URL,
        data: bytes,
        connect_timeout_s: float,
        max_body_bytes: int,
    ) -> Response:
        """:meth:`request` with the request already encoded (:meth:`encode`): an attempt
        held before its send time encodes it then, and pays only the send at its time."""
        host = url.raw_host or ""
        port = url.port or _DEFAULT_PORTS.get(url.scheme, 80)
        key = (url.scheme, host, port)
        connection = self._idle_connection(key)
        while connection is None:
            if self._open < self._limit or self._evict_one():
                connection = await self._connect(key, connect_timeout_s)
            else:  # every connection is busy: the first one back may be this host's
                self._freed.clear()
                await self._freed.wait()
                connection = self._idle_connection(key)
        try:
            response = await connection.send(data, max_body_bytes, method == "HEAD")
        except BaseException:
            self._release(key, connection)  # not reusable: closed
            raise
        response._release = functools.partial(self._release, key, connection)
        return response

    def encode(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes | None
    ) -> bytes:
        """The request head and body, as aiohttp wrote them: ``Host`` (unless the task
        gives one), the task's headers, ``Accept`` and ``User-Agent`` unless given, and
        ``Content-Length`` for a body or a method that expects one."""
        given = {name.lower() for name in headers}
        lines = [f"{method} {url.raw_path_qs} HTTP/1.1\r\n"]
        if "host" not in given:
            lines.append(f"Host: {url.host_port_subcomponent}\r\n")
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        if "accept" not in given:
            lines.append("Accept: */*\r\n")
        if "user-agent" not in given:
            lines.append(f"User-Agent: {self._user_agent}\r\n")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        elif method not in _BODILESS_METHODS:
            lines.append("Content-Length: 0\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("utf-8")
        return head + body if body else head

    # -- connections

    def _idle_connection(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: least likely closed
            if not connection.lost and now - connection.idle_since < self._keepalive_s:
                return connection
            connection._close()
            self._open -= 1
        return None

    async def _connect(self, key: tuple[str, str, int], connect_timeout_s: float) -> _Connection:
        self._open += 1
        try:
            return await self._open_connection(key, connect_timeout_s)
        except BaseException:
            self._open -= 1
            self._freed.set()
            raise

    async def _open_connection(
        self, key: tuple[str, str, int], connect_timeout_s: float
    ) -> _Connection:
        scheme, host, port = key
        addresses = await self._addresses(host, port)
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if scheme == "https" else None
        last: OSError | None = None
        try:
            async with asyncio.timeout(connect_timeout_s):
                for address in addresses:
                    try:
                        _, connection = await loop.create_connection(
                            lambda: _Connection(loop),
                            address,
                            port,
                            ssl=tls,
                            server_hostname=host.strip("[]") if tls else None,
                        )
                        return connection
                    except ssl.SSLError as error:
                        raise TLSFailed(error) from None
                    except OSError as error:
                        last = error
        except TimeoutError:
            raise ConnectTimeout(f"{host}:{port}") from None
        raise ConnectFailed(last or OSError("no address to connect to"))

    async def _addresses(self, host: str, port: int) -> list[str]:
        """A literal address as written (already checked by the caller); a name through
        the guard, its answer kept ``dns_ttl_s``."""
        literal = host.strip("[]")
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            pass
        else:
            return [literal]
        cached = self._dns.get((host, port))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            addresses = await self._resolve(host, port)
        except OSError as error:
            raise ResolveFailed(error) from None
        if not addresses:
            raise ResolveFailed(OSError(f"no address for {host}"))
        if len(self._dns) >= DNS_CACHE_ENTRIES:  # many hosts: keep only what is fresh
            self._dns = {k: v for k, v in self._dns.items() if v[0] > now}
        self._dns[(host, port)] = (now + self._dns_ttl_s, addresses)
        return addresses

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _release(self, key: tuple[str, str, int], connection: _Connection) -> None:
        """Pool the connection again if its exchange ended well, else close it."""
        if connection.reusable and not self._closed:
            connection.reusable = False  # until its next exchange ends well
            connection.idle_since = time.monotonic()
            self._idle.setdefault(key, deque()).append(connection)
            if self._sweeping is None:
                loop = asyncio.get_running_loop()
                self._sweeping = loop.call_later(self._keepalive_s, self._sweep)
        else:
            connection.abandon()
            self._open -= 1
        self._freed.set()

    def _sweep(self) -> None:
        """Close the connections idle past the keep-alive (their sockets would stay open
        as long as the server allows); again later while any are idle."""
        self._sweeping = None
        now = time.monotonic()
        for key, idle in list(self._idle.items()):
            while idle and (idle[0].lost or now - idle[0].idle_since >= self._keepalive_s):
                idle.popleft()._close()
                self._open -= 1
            if not idle:
                del self._idle[key]
        if self._idle and not self._closed:
            loop = asyncio.get_running_loop()
            self._sweeping = loop.call_later(self._keepalive_s, self._sweep)

    def _evict_one(self) -> bool:
        """Close the longest idle connection of any host, making room for another."""
        oldest: tuple[float, deque[_Connection]] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0]):
                oldest = (idle[0].idle_since, idle)
        if oldest is None:
            return False
        oldest[1].popleft()._close()
        self._open -= 1
        return True

    async def close(self) -> None:
        self._closed = True
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None
        for idle in self._idle.values():
            for connection in idle:
                connection._close()
        self._idle.clear()
        self._open = 0
        await asyncio.sleep(0)  # let the transports run their connection_lost
