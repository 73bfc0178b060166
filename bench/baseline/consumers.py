"""The tutorial chat room: join the group, and fan every `say` out to it."""

from __future__ import annotations

import itertools
import json

from channels.generic.websocket import AsyncWebsocketConsumer

# Per process, so not a circle-wide order: the load generator never relies on it.
_next_seq = itertools.count(1)


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.group_name = f"room.{self.scope['url_route']['kwargs']['circle_id']}"
        # In the group before accepting: a client that sees the handshake complete
        # is already reachable.
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(frame, dict) or frame.get("type") != "say":
            return
        await self.channel_layer.group_send(
            self.group_name,
            {
                "type": "chat.message",
                "text": str(frame.get("text", "")),
                "client_id": frame.get("client_id"),
                "seq": next(_next_seq),
            },
        )

    async def chat_message(self, event: dict) -> None:
        await self.send(
            text_data=json.dumps(
                {
                    "type": "message",
                    "text": event["text"],
                    "client_id": event["client_id"],
                    "seq": event["seq"],
                }
            )
        )
