"""Notification channels (where grouped notifications go) and the notifications sent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from taskhub.api.deps import Authed, JsonBody
from taskhub.api.schemas import (
    Channel,
    ChannelCreate,
    ChannelPage,
    ChannelPatch,
    Notification,
    NotificationPage,
    answers,
    body_doc,
)
from taskhub.service import notifications

router = APIRouter(tags=["notifications"])


@router.post(
    "/v1/notification-channels",
    status_code=201,
    openapi_extra=body_doc(ChannelCreate),
    **answers(Channel, 409, 413, summary="Create a notification channel"),
)
def create_channel(caller: Authed, body: JsonBody, response: Response) -> dict[str, Any]:
    channel = caller.run(
        lambda conn: notifications.create_channel(
            conn, caller.tenant, body, caller.now, caller.settings
        )
    )
    response.headers["Location"] = f"/v1/notification-channels/{channel['id']}"
    return channel


@router.get(
    "/v1/notification-channels",
    **answers(ChannelPage, summary="The tenant's notification channels, by name"),
)
def list_channels(caller: Authed) -> dict[str, Any]:
    return caller.run(lambda conn: notifications.list_channels(conn, caller.tenant))


@router.get(
    "/v1/notification-channels/{channel}",
    **answers(Channel, 404, summary="One channel, by id or name"),
)
def get_channel(caller: Authed, channel: str) -> dict[str, Any]:
    return caller.run(lambda conn: notifications.get_channel(conn, caller.tenant, channel))


@router.patch(
    "/v1/notification-channels/{channel}",
    openapi_extra=body_doc(ChannelPatch),
    **answers(Channel, 404, 409, 413, summary="Change a channel"),
)
def update_channel(caller: Authed, channel: str, body: JsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: notifications.update_channel(
            conn, caller.tenant, channel, body, caller.now, caller.settings
        )
    )


@router.delete(
    "/v1/notification-channels/{channel}",
    **answers(None, 404, summary="Delete a channel (what it was sent stays listed)"),
)
def delete_channel(caller: Authed, channel: str) -> None:
    caller.run(lambda conn: notifications.delete_channel(conn, caller.tenant, channel))


@router.post(
    "/v1/notification-channels/{channel}/test",
    **answers(
        Notification, 404, summary="Send a test message now; answers how it went (sent, failed)"
    ),
)
def test_channel(caller: Authed, channel: str) -> dict[str, Any]:
    return notifications.send_test(
        caller.context.engine, caller.tenant, channel, caller.now, caller.settings
    )


@router.get(
    "/v1/notifications",
    **answers(NotificationPage, summary="The notifications sent, newest first, with their status"),
)
def list_notifications(
    caller: Authed,
    channel: Annotated[str | None, Query(description="A channel's id or name.")] = None,
    status: Annotated[str | None, Query(description="pending, sent or failed.")] = None,
    limit: Annotated[int | None, Query(description="Page size, 1 to 500 (50).")] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> dict[str, Any]:
    return caller.run(
        lambda conn: notifications.list_notifications(
            conn, caller.tenant, channel=channel, status=status, limit=limit, cursor=cursor
        )
    )


@router.get(
    "/v1/notifications/{notification_id}",
    **answers(Notification, 404, summary="One notification, with the document it carries"),
)
def get_notification(caller: Authed, notification_id: int) -> dict[str, Any]:
    return caller.run(
        lambda conn: notifications.get_notification(conn, caller.tenant, notification_id)
    )
