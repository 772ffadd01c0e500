"""taskhub's HTTP/1.1 client against scripted servers on loopback: framing, keep-alive,
the body cap and what makes a connection unfit to reuse."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from yarl import URL

from taskhub.engine import http_client

#: One connection's script: it reads requests and writes what the test wants.
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _resolve(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def _pool(**options: Any) -> http_client.Pool:
    values: dict[str, Any] = {"limit": 10, "keepalive_s": 4.0, "dns_ttl_s": 30.0}
    values.update(options)
    return http_client.Pool(_resolve, user_agent="taskhub-test", **values)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return head + await reader.readexactly(int(line.split(b":")[1]))
    return head


class Server:
    """Runs ``script`` for every connection; counts connections and keeps what was read."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def url(self, path: str = "/") -> URL:
        return URL(f"http://127.0.0.1:{self.port}{path}")

    @classmethod
    def answering(cls, *responses: bytes) -> Server:
        """A server answering each request, on whichever connection, with the next of
        ``responses``; a connection stays open until the client closes it."""
        left = list(responses)

        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while left:
                server.requests.append(await _read_request(reader))
                writer.write(left.pop(0))
                await writer.drain()
            await reader.read()

        server = cls(script)
        return server

    @classmethod
    def closing_after(cls, response: bytes) -> Server:
        """A server that answers one request per connection with ``response``, then
        closes the connection."""

        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(response)
            await writer.drain()

        return cls(script)


async def _get(
    pool: http_client.Pool, url: URL, method: str = "GET", body: bytes | None = None
) -> tuple[int, bytes, bool]:
    response = await pool.request(method, url, {"X-Test": "1"}, body, 5.0, 1000)
    body_read, truncated = await response.read()
    return response.status, body_read, truncated


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_kept_alive_connection_serves_the_next_request_and_the_request_is_framed() -> None:
    async def test() -> None:
        server = Server.answering(OK, OK)
        async with server:
            pool = _pool()
            assert await _get(pool, server.url("/a?b=1"), "POST", b'{"k": 1}') == (
                200,
                b"ok",
                False,
            )
            assert await _get(pool, server.url("/c")) == (200, b"ok", False)
            await pool.close()
        assert server.connections == 1
        post, get = server.requests
        assert post.startswith(b"POST /a?b=1 HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in post
        for line in (b"X-Test: 1", b"Accept: */*", b"User-Agent: taskhub-test"):
            assert line + b"\r\n" in post
        assert post.endswith(b'Content-Length: 8\r\n\r\n{"k": 1}')
        assert b"Content-Length" not in get  # a GET without a body says nothing of one

    run(test)


def test_a_bodiless_post_says_its_length_is_zero() -> None:
    async def test() -> None:
        server = Server.answering(OK)
        async with server:
            pool = _pool()
            await _get(pool, server.url(), "POST")
            await pool.close()
        assert server.requests[0].endswith(b"Content-Length: 0\r\n\r\n")

    run(test)


def test_connection_close_is_honoured() -> None:
    async def test() -> None:
        closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        server = Server.answering(closing, closing)
        async with server:
            pool = _pool()
            for _ in range(2):
                assert await _get(pool, server.url()) == (200, b"ok", False)
            await pool.close()
        assert server.connections == 2

    run(test)


def test_a_chunked_body_is_read_whole() -> None:
    async def test() -> None:
        chunked = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        server = Server.answering(chunked, OK)
        async with server:
            pool = _pool()
            assert await _get(pool, server.url()) == (200, b"abcdefg", False)
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await pool.close()
        assert server.connections == 1

    run(test)


def test_a_body_delimited_by_the_close_ends_there() -> None:
    async def test() -> None:
        async with Server.closing_after(b"HTTP/1.0 200 OK\r\n\r\nuntil the end") as server:
            pool = _pool()
            assert await _get(pool, server.url()) == (200, b"until the end", False)
            assert await _get(pool, server.url()) == (200, b"until the end", False)
            await pool.close()
        assert server.connections == 2

    run(test)


def test_an_interim_response_is_skipped() -> None:
    async def test() -> None:
        server = Server.answering(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
        async with server:
            pool = _pool()
            assert await _get(pool, server.url(), "POST", b"x") == (200, b"ok", False)
            await pool.close()

    run(test)


def test_a_head_response_ends_at_its_head() -> None:
    async def test() -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
        server = Server.answering(head, OK)
        async with server:
            pool = _pool()
            assert await _get(pool, server.url(), "HEAD") == (200, b"", False)
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await pool.close()
        assert server.connections == 2  # not reused: its framing is the client's guess

    run(test)


def test_a_body_past_the_cap_is_cut_and_its_connection_closed() -> None:
    async def test() -> None:
        big = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + b"x" * 3000
        server = Server.answering(big, OK)
        async with server:
            pool = _pool()
            status, body, truncated = await _get(pool, server.url())
            assert (status, len(body), truncated) == (200, 1000, True)
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await pool.close()
        assert server.connections == 2

    run(test)


def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async def test() -> None:
        # The server closes after answering: the client's pooled connection ends.
        async with Server.closing_after(OK) as server:
            pool = _pool()
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await asyncio.sleep(0.2)
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await pool.close()
        assert server.connections == 2

    run(test)


def test_an_idle_connection_past_the_keepalive_is_not_used_again() -> None:
    async def test() -> None:
        server = Server.answering(OK, OK)
        async with server:
            pool = _pool(keepalive_s=0.05)
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await asyncio.sleep(0.2)
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await pool.close()
        assert server.connections == 2

    run(test)


def test_an_idle_connection_is_closed_by_the_client_after_the_keepalive() -> None:
    closed = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(OK)
        await writer.drain()
        await reader.read()  # the client's end of the connection
        closed.set()

    async def test() -> None:
        async with Server(script) as server:
            pool = _pool(keepalive_s=0.05)
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await asyncio.wait_for(closed.wait(), 5)
            assert pool._open == 0
            await pool.close()

    run(test)


def test_a_second_response_to_one_request_closes_the_connection() -> None:
    async def test() -> None:
        server = Server.answering(OK + OK, OK)
        async with server:
            pool = _pool()
            assert await _get(pool, server.url()) == (200, b"ok", False)
            assert await _get(pool, server.url()) == (200, b"ok", False)
            await pool.close()
        assert server.connections == 2

    run(test)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", http_client.InvalidResponse),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", http_client.InvalidResponse),
        (b"", http_client.Disconnected),
    ],
)
def test_what_is_not_a_response_is_an_error(response: bytes, error: type[Exception]) -> None:
    async def test() -> None:
        async with Server.closing_after(response) as server:
            pool = _pool()
            with pytest.raises(error):
                await _get(pool, server.url())
            await pool.close()

    run(test)


def test_a_body_cut_short_by_the_close_is_incomplete() -> None:
    async def test() -> None:
        short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"
        async with Server.closing_after(short) as server:
            pool = _pool()
            response = await pool.request("GET", server.url(), {}, None, 5.0, 1000)
            with pytest.raises(http_client.IncompleteBody):
                await response.read()
            await pool.close()

    run(test)


def test_names_resolve_through_the_callers_resolver_and_its_refusal_stops_the_request() -> None:
    asked: list[tuple[str, int]] = []

    async def refuse(host: str, port: int) -> list[str]:
        asked.append((host, port))
        raise OSError("refused by the guard")

    async def test() -> None:
        pool = http_client.Pool(
            refuse, limit=1, keepalive_s=4.0, dns_ttl_s=30.0, user_agent="taskhub-test"
        )
        with pytest.raises(http_client.ResolveFailed) as info:
            await pool.request("GET", URL("http://service.example:8080/"), {}, None, 5.0, 10)
        assert "refused by the guard" in str(info.value.os_error)
        await pool.close()

    run(test)
    assert asked == [("service.example", 8080)]


def test_with_every_connection_busy_a_request_waits_for_one() -> None:
    async def test() -> None:
        server = Server.answering(OK, OK, OK)
        async with server:
            pool = _pool(limit=1)
            results = await asyncio.gather(*(_get(pool, server.url()) for _ in range(3)))
            await pool.close()
        assert results == [(200, b"ok", False)] * 3
        assert server.connections == 1

    run(test)
