"""The names on the broker: taskhub's three queues and its Celery task names, written
once (the app's routes, the launch profiles, the deployment files' tests use them)."""

from __future__ import annotations

from typing import Final

#: The tick (beat sends it; discovery claims and publishes).
DISCOVERY_QUEUE: Final = "taskhub.discovery"
#: Trigger messages: the HTTP requests.
TRIGGER_QUEUE: Final = "taskhub.triggers"
#: Chord callbacks (the write-back) and Celery's own chord bookkeeping.
STATE_QUEUE: Final = "taskhub.state"
ALL_QUEUES: Final = (DISCOVERY_QUEUE, TRIGGER_QUEUE, STATE_QUEUE)

TICK_TASK: Final = "taskhub.tick"
FIRE_TRIGGERS_TASK: Final = "taskhub.fire_triggers"
RECORD_CHUNK_TASK: Final = "taskhub.record_chunk"
#: History retention's prune pass (beat sends it to the state queue).
PRUNE_TASK: Final = "taskhub.prune_history"
