"""Who is in the live room: connections registered, kept alive, replaced and swept.

Presence comes from RoomConnection rows, so every process agrees on it. A
consumer beats every few seconds; a connection whose process died stops beating
and lapses, and the sweep (circles/sweeper.py) takes it out and tells the room.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from circles import frames, selectors
from circles.events import broadcast_to_circle, notify_access_changed, notify_replaced
from circles.models import FloorState, RoomConnection, SessionStatus

MAX_CONNECTIONS_PER_MEMBER = 5


def broadcast_presence(
    circle_id: int,
    now: datetime,
    *,
    hands: set[int] | None = None,
    access_version: int | None = None,
) -> None:
    """Tell the room who is here (and whose hand is up): the whole list. A caller
    that holds the floor or the circle passes what it knows (and what it is about
    to write: the hands)."""
    if access_version is None:
        access_version = selectors.circle_access_version(circle_id=circle_id)
    broadcast_to_circle(
        circle_id,
        frames.presence_frame(selectors.room_presence(circle_id=circle_id, now=now, hands=hands)),
        access_version=access_version,
    )


def presence_moved(circle_ids) -> None:
    """Tell the open floors of these circles that who is present changed, so the sweep
    settles them (a gone speaker, a round's newcomer, a waiting hand). Bumps a counter
    without the circle's lock: a connect never waits on a share."""
    FloorState.objects.filter(
        session__circle_id__in=circle_ids, session__status=SessionStatus.OPEN
    ).update(presence_serial=F("presence_serial") + 1)


def room_connect(
    *, circle_id: int, user_id: int, channel_name: str, access_version: int | None = None
) -> None:
    """Register a new connection (a channel name is never reused); past five for one
    member, the oldest are replaced (4409). `access_version`: the circle's, if the
    caller read it just now."""
    now = timezone.now()
    with transaction.atomic():
        RoomConnection.objects.create(
            channel_name=channel_name, circle_id=circle_id, user_id=user_id, seen_at=now
        )
        lapse = selectors.presence_since(now)
        live = list(
            RoomConnection.objects.select_for_update()
            .filter(user_id=user_id, replaced=False, seen_at__gte=lapse)
            .order_by("-connected_at", "-id")
            .values_list("pk", "channel_name", "circle_id")
        )
        extra = live[MAX_CONNECTIONS_PER_MEMBER:]
        changed = {circle_id}
        if extra:
            RoomConnection.objects.filter(pk__in=[pk for pk, _name, _circle in extra]).update(
                replaced=True
            )
            notify_replaced([name for _pk, name, _circle in extra])
            changed |= {circle for _pk, _name, circle in extra}
        for circle in changed:
            known = access_version if circle == circle_id else None
            broadcast_presence(circle, now, access_version=known)
    # After the commit, on its own: the sweep then settles with this presence, and a
    # connect never holds a floor's row while it reads.
    presence_moved(changed)


def room_disconnect(*, channel_name: str) -> None:
    with transaction.atomic():
        row = RoomConnection.objects.filter(channel_name=channel_name).first()
        if row is None:
            return
        row.delete()
        broadcast_presence(row.circle_id, timezone.now())
    presence_moved({row.circle_id})


def room_beat_many(*, connections: dict[str, tuple[int, int]]) -> set[str]:
    """Keep every connection of one process alive in one UPDATE. Returns the channel
    names that were replaced (their sockets close with 4409); any swept while the
    process was stalled are registered again so presence is right."""
    names = set(connections)
    RoomConnection.objects.filter(channel_name__in=names, replaced=False).update(
        seen_at=timezone.now()
    )
    stored = dict(
        RoomConnection.objects.filter(channel_name__in=names).values_list(
            "channel_name", "replaced"
        )
    )
    for name in names - set(stored):
        circle_id, user_id = connections[name]
        room_connect(circle_id=circle_id, user_id=user_id, channel_name=name)
    return {name for name, replaced in stored.items() if replaced}


def presence_sweep(*, now: datetime | None = None) -> int:
    """Remove connections that stopped beating; tell each affected room. Safe to run
    on every process at once: a row is deleted once, so the room hears of it once."""
    now = now or timezone.now()
    lapse = selectors.presence_since(now)
    with transaction.atomic():
        stale = RoomConnection.objects.filter(seen_at__lt=lapse)
        circles = set(stale.values_list("circle_id", flat=True))
        deleted, _by_model = stale.delete()
        if deleted:  # another process that swept the same rows first deleted nothing
            for circle_id in circles:
                broadcast_presence(circle_id, now)
    if deleted:
        presence_moved(circles)
    return deleted


def room_sign_in_ended(*, user_id: int) -> None:
    """Signed out, or the password changed: their sockets check and close (4408)."""
    notify_access_changed(user_id)
