"""The live room: one websocket per member per tab, speaking docs/protocol.md.

Thin, like a view: parse the frame, check access, call one service or selector,
send the answer. Group events from services (on any process) are forwarded to
the client after a visibility check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext as _

from circles import frames, ratelimit, selectors
from circles.floor_codec import floor_from_row
from circles.groups import access_epoch_key, circle_group, user_group
from circles.models import MessageKind
from circles.room_db import room_db
from circles.room_hub import hub
from circles.selectors import RoomRefusal
from circles.services.errors import ServiceError
from circles.services.floor import (
    floor_grant,
    floor_next,
    floor_nudge,
    floor_pass,
    floor_pause,
    floor_people,
    floor_raise_hand,
    floor_set_mode,
)
from circles.services.messages import message_post
from circles.services.room import room_connect, room_disconnect
from circles.services.sessions import session_close, session_open

logger = logging.getLogger(__name__)

SAY_LIMIT = ratelimit.Limit("say", count=20, seconds=30)
OTHER_LIMIT = ratelimit.Limit("frame", count=60, seconds=30)
SAY_KINDS = {MessageKind.SHARE.value, MessageKind.FACILITATION.value}
FLOOR_MODES = {"open", "queue", "round"}
MODE_SETTINGS = {"turn_seconds": (30, 900), "turn_messages": (1, 50)}
MAX_PAUSE_MINUTES = 120

db = room_db


def _uuid_or_none(value) -> str | None:
    """A client_id echoed as `ref` only if it is one: never arbitrary text."""
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def hello_frame(*, membership, user) -> dict:
    """The room as this member finds it on arrival. Four queries (five when a name on
    the floor isn't remembered), whatever the history: read only, no lock; the sweep
    settles the floor within a second of the arrival."""
    circle_id = membership.circle_id
    # The seq first: history stops there, and anything newer arrives live.
    seq = selectors.circle_latest_seq(circle_id=circle_id)
    session, floor_row = selectors.open_session_and_floor(circle_id=circle_id)
    history = selectors.room_history(membership=membership, up_to=seq)
    floor = floor_from_row(floor_row) if floor_row is not None else None
    role = membership.role
    if session is not None and session.facilitator_id == user.pk:
        role = "facilitator"
    hands = {hand.member_id for hand in floor.hands} if floor is not None else set()
    return {
        "type": "hello",
        "protocol": frames.PROTOCOL_VERSION,
        "you": {"member_id": user.pk, "name": user.display_name, "role": role},
        "circle": {"id": circle_id, "name": membership.circle.name},
        "session": frames.session_frame(session),
        "floor": frames.floor_frame(floor, selectors.display_names(ids=floor_people(floor)))
        if floor is not None
        else frames.open_floor_frame(),
        "presence": frames.presence_frame(
            selectors.room_presence(circle_id=circle_id, now=timezone.now(), hands=hands)
        ),
        "history": [frames.message_frame(message) for message in history],
        "seq": seq,
    }


class FrameError(Exception):
    """A frame the server can't act on; answered with an `error` frame."""

    def __init__(self, code: str, detail: str, *, retry_after: float | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class RoomConsumer(AsyncWebsocketConsumer):
    circle_id: int
    membership = None
    hello_seq = 0
    closing = False
    access_task: asyncio.Task | None = None
    recheck_task: asyncio.Task | None = None

    # Connection ---------------------------------------------------------------

    async def connect(self) -> None:
        # Accept first: a close before accept reaches browsers as 1006, not our code.
        await self.accept()
        user = self.scope["user"]
        self.circle_id = int(self.scope["url_route"]["kwargs"]["circle_id"])
        entry = await db(selectors.room_entry)(circle_id=self.circle_id, user=user)
        if entry.refusal is not None:
            await self.close_with(entry.refusal)
            return
        self.user = user
        self.session_key = self.scope["session"].session_key
        self.membership = entry.membership
        self.access_version = self.membership.circle.access_version
        # Join the groups before reading the state, so nothing falls between the two.
        await self.join_groups()
        self.access_epoch = await self.read_access_epoch()
        self.last_full_check = time.monotonic()
        await db(room_connect)(
            circle_id=self.circle_id,
            user_id=user.pk,
            channel_name=self.channel_name,
            access_version=self.access_version,
        )
        hello = await db(hello_frame)(membership=self.membership, user=user)
        self.hello_seq = hello["seq"]
        await self.send_json(hello)
        # Presence beats, access checks and ticks: once per process, for every socket.
        hub.add(self)

    async def __call__(self, scope, receive, send):
        # However this consumer ends (a normal disconnect, a crash, or daphne killing
        # a consumer slow to shut down), its heartbeat ends with it: otherwise a gone
        # member would stay "present", and a gone speaker keep the floor.
        try:
            return await super().__call__(scope, receive, send)
        finally:
            self.stop_background_tasks()

    def stop_background_tasks(self) -> None:
        self.closing = True
        hub.remove(self)
        for task in (self.access_task, self.recheck_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def disconnect(self, code) -> None:
        self.stop_background_tasks()
        if self.membership is None:
            return
        try:
            await self.channel_layer.group_discard(circle_group(self.circle_id), self.channel_name)
            await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
        except Exception:
            logger.warning("could not leave the room's groups; they expire on their own")
        await db(room_disconnect)(channel_name=self.channel_name)

    async def join_groups(self) -> None:
        """Join (again) the room's group and this person's. Repeated on every beat:
        a restarted Redis has forgotten every group."""
        try:
            await self.channel_layer.group_add(circle_group(self.circle_id), self.channel_name)
            await self.channel_layer.group_add(user_group(self.user.pk), self.channel_name)
        except Exception:
            logger.warning("could not join the room's groups; trying again on the next beat")

    # channels assigns `channel_receive` once per consumer; this wraps it so that a
    # channel layer outage (Redis restarting) pauses the room instead of ending it.
    @property
    def channel_receive(self):
        return self._channel_receive

    @channel_receive.setter
    def channel_receive(self, receive) -> None:
        async def receive_through_outages():
            delay = 0.1
            while True:
                try:
                    return await receive()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.warning("channel layer unavailable; retrying in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)

        self._channel_receive = receive_through_outages

    async def close_with(self, code: int) -> None:
        self.closing = True
        await self.close(code=code)

    # The heartbeat: presence, access re-checks, ticks --------------------------

    async def read_access_epoch(self):
        try:
            return await cache.aget(access_epoch_key(self.user.pk))
        except Exception:
            logger.warning("room access epoch unreadable; the hub checks again")
            return None

    def start_access_check(self) -> None:
        """Check sign-in and membership again, beside whatever this socket is doing
        (the hub asks when the access epoch moved, or a full check is due)."""
        if self.closing or (self.access_task is not None and not self.access_task.done()):
            return
        self.access_task = asyncio.create_task(self.check_access_quietly())

    async def check_access_quietly(self) -> None:
        try:
            await self.still_allowed()
        except Exception:
            # The database hiccuped: the next epoch change or full check tries again.
            logger.warning("room access check failed; trying again later")

    async def still_allowed(self) -> bool:
        """Re-check sign-in and membership; close with the right code if either ended."""
        if not await db(selectors.session_key_is_valid)(
            session_key=self.session_key, user=self.user
        ):
            await self.close_with(RoomRefusal.SIGNED_OUT)
            return False
        return await self.membership_still_active()

    async def membership_still_active(self) -> bool:
        membership = await db(selectors.room_membership)(
            circle_id=self.circle_id, user_id=self.user.pk
        )
        if membership is None:
            await self.close_with(RoomRefusal.NOT_A_MEMBER)
            return False
        self.membership = membership
        self.access_version = membership.circle.access_version
        return True

    # Frames from the client -----------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.membership is None or self.closing:
            return
        ref = None
        try:
            frame = self.parse(text_data, bytes_data)
            ref = _uuid_or_none(frame.get("client_id"))
            kind = frame.get("type")
            handler = self.HANDLERS.get(kind)
            if handler is None:
                raise FrameError("unknown_type", _("This room doesn't know that kind of frame."))
            limit = SAY_LIMIT if kind == "say" else OTHER_LIMIT
            verdict = ratelimit.hit(limit, self.user.pk)  # in memory: no I/O
            if not verdict.allowed:
                raise FrameError(
                    "rate_limited",
                    _("You're sending a lot very fast. Please wait a moment."),
                    retry_after=verdict.retry_after,
                )
            # Membership is checked again for every frame, inside the service that
            # acts on it (read with the floor, under the circle's lock); `resume`,
            # which only reads, checks here.
            await handler(self, frame)
        except FrameError as error:
            await self.send_json(
                frames.error_frame(error.code, error.detail, retry_after=error.retry_after, ref=ref)
            )
        except ServiceError as error:
            # Refused as not (or no longer) a member: if so, the room closes (4403).
            if error.code == "forbidden" and not await self.membership_still_active():
                return
            await self.send_json(
                frames.error_frame(
                    error.code, error.message, retry_after=error.retry_after, ref=ref
                )
            )
        except Exception:
            # One bad frame never ends the socket: nothing was half-written (each
            # service is one transaction), so say so and carry on.
            logger.exception("room frame failed")
            await self.send_json(
                frames.error_frame(
                    "invalid", _("Something went wrong with that. Please try again."), ref=ref
                )
            )

    @staticmethod
    def parse(text_data, bytes_data) -> dict:
        if text_data is None:
            raise FrameError("invalid", _("Please send text frames holding JSON."))
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise FrameError("invalid", _("That frame isn't valid JSON.")) from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("invalid", _("Each frame is a JSON object with a type."))
        return frame

    async def on_say(self, frame: dict) -> None:
        text = frame.get("text")
        kind = frame.get("kind", MessageKind.SHARE.value)
        if not isinstance(text, str):
            raise FrameError("invalid", _("A message needs some text."))
        if not isinstance(kind, str) or kind not in SAY_KINDS:
            raise FrameError("invalid", _("That kind of message isn't one you can send."))
        try:
            client_id = uuid.UUID(str(frame.get("client_id")))
        except ValueError:
            raise FrameError("invalid", _("A message needs a client_id (a UUID).")) from None
        posted = await db(message_post)(
            circle_id=self.circle_id, user=self.user, text=text, client_id=client_id, kind=kind
        )
        if not posted.created:
            # A resend: answer with what was stored, whatever the floor says now.
            await self.send_json(frames.message_frame(posted.message))

    async def on_resume(self, frame: dict) -> None:
        after = frame.get("after")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise FrameError("invalid", _("resume needs after: the last seq you hold."))
        if not await self.membership_still_active():
            return
        messages, more = await db(selectors.messages_after)(membership=self.membership, after=after)
        for message in messages:
            await self.send_json(frames.message_frame(message))
        if messages:
            # Sent now: a live copy still on its way must not arrive a second time.
            self.hello_seq = max(self.hello_seq, messages[-1].seq)
        await self.send_json(
            {"type": "resumed", "after": after, "count": len(messages), "more": more}
        )

    async def on_open_session(self, frame: dict) -> None:
        await db(session_open)(circle_id=self.circle_id, user=self.user)

    async def on_close_session(self, frame: dict) -> None:
        await db(session_close)(circle_id=self.circle_id, user=self.user)

    async def on_hand(self, frame: dict) -> None:
        raised = frame.get("raised")
        if not isinstance(raised, bool):
            raise FrameError("invalid", _("hand needs raised: true or false."))
        await db(floor_raise_hand)(circle_id=self.circle_id, user=self.user, raised=raised)

    async def on_pass(self, frame: dict) -> None:
        await db(floor_pass)(circle_id=self.circle_id, user=self.user)

    async def on_next(self, frame: dict) -> None:
        await db(floor_next)(circle_id=self.circle_id, user=self.user)

    async def on_grant(self, frame: dict) -> None:
        member = frame.get("member")
        if isinstance(member, bool) or not isinstance(member, int):
            raise FrameError("invalid", _("grant needs member: a member id."))
        await db(floor_grant)(circle_id=self.circle_id, user=self.user, member_id=member)

    async def on_mode(self, frame: dict) -> None:
        mode = frame.get("mode")
        if not isinstance(mode, str) or mode not in FLOOR_MODES:
            raise FrameError("invalid", _("mode is one of open, queue or round."))
        settings = self.parse_mode_settings(frame.get("settings"))
        await db(floor_set_mode)(
            circle_id=self.circle_id, user=self.user, mode=mode, settings=settings
        )

    @staticmethod
    def parse_mode_settings(raw) -> dict | None:
        if raw is None:
            return None
        if not isinstance(raw, dict) or not set(raw) <= {*MODE_SETTINGS, "auto_advance"}:
            raise FrameError(
                "invalid", _("settings may hold turn_seconds, turn_messages and auto_advance.")
            )
        settings = {}
        for name, (low, high) in MODE_SETTINGS.items():
            if name in raw:
                value = raw[name]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int)
                    or not low <= value <= high
                ):
                    raise FrameError(
                        "invalid",
                        _("%(name)s must be a whole number from %(low)d to %(high)d.")
                        % {"name": name, "low": low, "high": high},
                    )
                settings[name] = value
        if "auto_advance" in raw:
            if not isinstance(raw["auto_advance"], bool):
                raise FrameError("invalid", _("auto_advance must be true or false."))
            settings["auto_advance"] = raw["auto_advance"]
        return settings

    async def on_pause(self, frame: dict) -> None:
        paused = frame.get("paused")
        minutes = frame.get("minutes")
        if not isinstance(paused, bool):
            raise FrameError("invalid", _("pause needs paused: true or false."))
        if minutes is not None and (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or not 0 < minutes <= MAX_PAUSE_MINUTES
        ):
            raise FrameError("invalid", _("minutes must be between 1 and 120."))
        await db(floor_pause)(
            circle_id=self.circle_id, user=self.user, paused=paused, minutes=minutes
        )

    async def on_nudge(self, frame: dict) -> None:
        member = frame.get("member")
        text = frame.get("text", "")
        if isinstance(member, bool) or not isinstance(member, int):
            raise FrameError("invalid", _("nudge needs member: a member id."))
        if not isinstance(text, str):
            raise FrameError("invalid", _("A nudge's text must be text."))
        await db(floor_nudge)(circle_id=self.circle_id, user=self.user, member_id=member, text=text)

    HANDLERS = {
        "say": on_say,
        "resume": on_resume,
        "open_session": on_open_session,
        "close_session": on_close_session,
        "hand": on_hand,
        "pass": on_pass,
        "next": on_next,
        "grant": on_grant,
        "mode": on_mode,
        "pause": on_pause,
        "nudge": on_nudge,
    }

    # Events from services, on any process ---------------------------------------

    async def may_receive(self, event: dict) -> bool:
        """Is this socket still one that may hear the room? Re-checked in the database
        only when the event was written after someone lost access to the circle."""
        if self.closing or self.membership is None:
            return False
        if event.get("access_version", self.access_version) != self.access_version:
            return await self.membership_still_active()
        return True

    async def room_message(self, event: dict) -> None:
        frame = event["frame"]
        # Nothing the hello already carried, nothing from before the member joined.
        if frame["seq"] <= self.hello_seq or frame["seq"] <= self.membership.visible_after_seq:
            return
        if await self.may_receive(event):
            await self.send_shared(event)

    async def room_frame(self, event: dict) -> None:
        """A whole-state frame for everyone: presence, session, floor, balance."""
        if await self.may_receive(event):
            await self.send_shared(event)

    async def room_private(self, event: dict) -> None:
        """A nudge or the live balance, for this person in this circle only."""
        if event.get("circle_id") == self.circle_id and not self.closing:
            await self.send_json(event["frame"])

    async def room_replaced(self, event: dict) -> None:
        await self.close_with(RoomRefusal.REPLACED)

    async def access_changed(self, event: dict) -> None:
        if self.membership is None or self.closing:
            return
        if await self.still_allowed():
            # Django says "logged out" just before it ends the session; another
            # process may hear it first. Look once more in a moment.
            self.recheck_task = asyncio.create_task(self.check_again_soon())

    async def check_again_soon(self) -> None:
        await asyncio.sleep(getattr(settings, "ROOM_RECHECK_SECONDS", 2.0))
        if self.membership is not None and not self.closing:
            await self.still_allowed()

    async def send_shared(self, event: dict) -> None:
        """Send a group event's frame, written as JSON once per process: the layer
        hands the same event to every socket of the process in the group."""
        text = event.get("frame_json")
        if text is None:
            text = event["frame_json"] = json.dumps(event["frame"], ensure_ascii=False)
        await self.send_text(text)

    async def send_json(self, content: dict) -> None:
        await self.send_text(json.dumps(content, ensure_ascii=False))

    async def send_text(self, text: str) -> None:
        if self.closing:
            return
        try:
            await self.send(text_data=text)
        except Exception:
            # The socket closed under us (a broadcast racing the close): stop here;
            # disconnect tidies up.
            self.stop_background_tasks()
