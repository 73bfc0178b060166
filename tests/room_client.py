"""A live-room client for tests: real websockets (the `websockets` library) to a
real daphne, signed in with a session made through Django's session engine."""

from __future__ import annotations

import asyncio
import json
import uuid
from importlib import import_module

import websockets
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

RECEIVE_TIMEOUT = 5.0


def session_key_for(user) -> str:
    """A signed-in session for this user, as the sign-in form would make it (sync ORM)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


class RoomClient:
    """One websocket to one circle's room, with helpers to read frames by type."""

    def __init__(self, connection, *, circle_id: int):
        self.connection = connection
        self.circle_id = circle_id
        self.frames: list[dict] = []  # every frame received, in order
        self.hello: dict | None = None

    @classmethod
    async def connect(
        cls,
        base_url: str,
        circle_id: int,
        *,
        session_key: str | None,
        origin: str | None = "same",
        expect_hello: bool = True,
    ) -> RoomClient:
        http_url = base_url.replace("ws://", "http://")
        headers = {}
        if session_key:
            headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={session_key}"
        connection = await websockets.connect(
            f"{base_url.replace('http://', 'ws://')}/ws/circles/{circle_id}/",
            origin=http_url if origin == "same" else origin,
            additional_headers=headers,
            open_timeout=10,
            max_size=None,
        )
        client = cls(connection, circle_id=circle_id)
        if expect_hello:
            client.hello = await client.receive("hello")
        return client

    async def send(self, frame: dict) -> None:
        await self.connection.send(json.dumps(frame))

    async def say(self, text: str, *, client_id: str | None = None, **extra) -> str:
        client_id = client_id or str(uuid.uuid4())
        await self.send({"type": "say", "text": text, "client_id": client_id, **extra})
        return client_id

    async def next_frame(self, timeout: float = RECEIVE_TIMEOUT) -> dict:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def receive(self, frame_type: str, timeout: float = RECEIVE_TIMEOUT, **match) -> dict:
        """The next frame of this type (and these field values); others are kept in .frames."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {frame_type} frame matching {match} within {timeout} s")
            frame = await self.next_frame(left)
            if frame.get("type") == frame_type and all(
                frame.get(key) == value for key, value in match.items()
            ):
                return frame

    async def closed_with(self, timeout: float = RECEIVE_TIMEOUT) -> int | None:
        """Read until the server closes, within `timeout` in all; return its close code."""

        async def read_until_closed() -> int | None:
            try:
                while True:
                    await self.next_frame(timeout)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None

        return await asyncio.wait_for(read_until_closed(), timeout)

    def messages(self) -> list[dict]:
        return [frame for frame in self.frames if frame.get("type") == "message"]

    async def close(self) -> None:
        await self.connection.close()
