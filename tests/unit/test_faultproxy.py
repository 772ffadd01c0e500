"""The fault proxy the PostgreSQL-outage scenario relies on: if ``cut`` did not really
reset and refuse connections, that scenario would pass without testing anything."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultProxy, running_proxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with running_proxy("127.0.0.1", server.server_address[1]) as proxy:
            yield proxy
    finally:
        server.shutdown()
        server.server_close()


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    return sock.recv(4096)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_cut_resets_open_connections_and_refuses_new_ones_until_healed(
    proxy: FaultProxy,
) -> None:
    with _connect(proxy.port) as sock:
        assert _echo(sock, b"ping") == b"ping"
        proxy.cut()
        # The open connection is reset (or at least closed): no more answers on it.
        with pytest.raises(OSError):
            for _ in range(3):
                if not _echo(sock, b"again"):
                    raise ConnectionResetError("closed")
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy.port)
    port = proxy.port
    proxy.heal()
    assert proxy.port == port
    with _connect(proxy.port) as sock:
        assert _echo(sock, b"back") == b"back"
    assert proxy.accepted == 2
