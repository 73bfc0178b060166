"""An idle socket stays open: redis-py 8 reads with a 5 s timeout by default, the same
as the channel layer's blocking read, and consumers used to die after a few quiet
seconds (stack-facts.md). The layer is configured with no socket timeout."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from circles.services.sessions import session_open
from tests.room_client import RoomClient, session_key_for

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_SECONDS = 12  # longer than twice redis-py's 5 s default read timeout


@pytest.mark.asyncio
async def test_a_socket_idle_for_12_seconds_still_hears_the_room(
    room_server, make_user, make_circle
):
    """After 12 quiet seconds the listener's socket is open and hears the next share."""
    speaker, listener = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    circle = await sync_to_async(make_circle)(moderator=speaker, members=(listener,))
    await sync_to_async(session_open)(circle_id=circle.pk, user=speaker)
    listening = await RoomClient.connect(
        room_server.url, circle.pk, session_key=await sync_to_async(session_key_for)(listener)
    )
    await asyncio.sleep(QUIET_SECONDS)
    speaking = await RoomClient.connect(
        room_server.url, circle.pk, session_key=await sync_to_async(session_key_for)(speaker)
    )
    await speaking.say("still here?")
    heard = await listening.receive("message", text="still here?")
    assert heard["author"]["member_id"] == speaker.pk
    # Nothing timed out meanwhile, not even a read the consumer quietly retried.
    log = room_server.log()
    assert "Timeout reading" not in log
    assert "channel layer unavailable" not in log
    await speaking.close()
    await listening.close()
