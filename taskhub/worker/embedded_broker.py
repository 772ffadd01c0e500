"""The embedded broker (``filesystem://``): kombu's filesystem transport, with a
message that appears in its queue folder only once it is whole.

kombu creates a message's file under its final name and then writes it. A worker
polling the folder in between (every 0.1 s) moves the file away, reads it empty or cut
short, and its JSON decoding raises out of the worker's consumer loop: "Unrecoverable
error: JSONDecodeError", the worker stops, and ``taskhub dev`` with it. The message is
gone (the worker removed its file), and the ones the worker held unacknowledged go
back to the queue; any that were already sent go out again when their lease runs out.
Under ``taskhub dev`` this came within a minute of a few run-nows a second (every
publish, from the API's tick requests to each chord's callback, takes the chance).

Here a message is written under a name no consumer takes (``.part`` after the queue's
suffix: kombu matches the suffix exactly) and renamed into place: a rename within one
folder is atomic, so a consumer sees the whole file or none.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

#: What ``celery_app`` gives Celery as ``broker_transport`` for ``filesystem://``.
TRANSPORT = "taskhub.worker.embedded_broker:Transport"

#: The suffix of a message still being written: never a queue's ``<queue>.msg``.
PARTIAL = ".part"


class Channel(filesystem.Channel):
    # kombu's stubs give its filesystem and base channels two different _put signatures.
    def _put(  # type: ignore[override]
        self, queue: str, payload: dict[str, Any], **kwargs: Any
    ) -> None:
        # kombu's own name (its time prefix orders the queue), so kombu's consumer reads it.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
