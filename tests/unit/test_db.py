"""Engine settings that matter when the database misbehaves (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from taskhub.db import engines


class Captured(Exception):
    pass


def test_postgresql_connections_give_up_after_the_connect_timeout() -> None:
    engine = engines.create_engine("postgresql://taskhub@engines.invalid:5432/taskhub")
    seen: dict[str, Any] = {}

    @event.listens_for(engine, "do_connect")
    def capture(_dialect: Any, _record: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        seen.update(kwargs)
        raise Captured

    with pytest.raises(Captured):
        engine.connect()
    assert seen["connect_timeout"] == engines.PG_CONNECT_TIMEOUT_S
    assert engine.pool._pre_ping
