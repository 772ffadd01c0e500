"""The REST API served for real: uvicorn in a thread of the test, on a free loopback
port, over the test's database; for the Python client and ``taskhub apply``, which speak
HTTP to it as to any deployment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from sqlalchemy.engine import Engine

from taskhub.api.app import create_app
from tests.support.api import new_key
from tests.support.processes import free_port, wait_until


@dataclass(frozen=True)
class LiveApi:
    """A running API: its address, and the engine of the database it serves."""

    url: str
    engine: Engine

    def new_key(self, tenant: str) -> str:
        """A key of ``tenant``, made as ``taskhub apikey create`` makes one."""
        return new_key(self.engine, tenant)


@contextmanager
def live_api(engine: Engine) -> Iterator[LiveApi]:
    """The API over ``engine`` on ``http://127.0.0.1:<free port>`` until the block ends.
    A run-now asks for no tick (no worker runs)."""
    port = free_port()
    app = create_app(engine=engine, request_tick=lambda: None)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-api", daemon=True)
    thread.start()
    try:
        if not wait_until(lambda: server.started, timeout_s=20, every_s=0.05):
            raise RuntimeError("the API did not start within 20 s")
        yield LiveApi(f"http://127.0.0.1:{port}", engine)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
