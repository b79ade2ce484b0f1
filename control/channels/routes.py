"""REST API v1 notification channels: list, create, delete (test/deliveries: channel_delivery)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import JSONBody

from control.channels import service as channel_store
from control.channels.schemas import Channel, ChannelType
from control.core.api_types import Ok, RowId
from control.core.deps import CallerDep, Db


class ChannelCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    type: ChannelType
    config: dict[str, Any]  # per-type keys, e.g. {"webhook_url": "https://..."}


class ChannelList(msgspec.Struct, kw_only=True):
    ok: bool
    channels: list[Channel]


class ChannelOne(msgspec.Struct, kw_only=True):
    ok: bool
    channel: Channel


class ChannelsController(Controller):
    path = "/channels"
    tags = ["channels"]

    @get(summary="List notification channels (secrets masked)")
    async def list_channels(self, caller: CallerDep, db: Db) -> ChannelList:
        return ChannelList(
            ok=True, channels=await channel_store.list_channels(db, caller.workspace_id)
        )

    @post(summary="Create a notification channel (config validated per type)")
    async def create_channel(
        self, data: JSONBody[ChannelCreate], caller: CallerDep, db: Db
    ) -> ChannelOne:
        channel = await channel_store.create_channel(
            db, caller.workspace_id, data.name, data.type, data.config
        )
        return ChannelOne(ok=True, channel=channel)

    @delete("/{channel_id:int}", status_code=200, summary="Delete a notification channel")
    async def delete_channel(self, channel_id: RowId, caller: CallerDep, db: Db) -> Ok:
        await channel_store.delete_channel(db, caller.workspace_id, channel_id)
        return Ok(ok=True)
