import pytest
from asgiref.sync import sync_to_async

from circles.services.sessions import session_open
from tests.room_client import RoomClient, session_key_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.asyncio
async def test_two_members_hear_each_other(room_server, make_user, make_circle):
    alice, bea = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    circle = await sync_to_async(make_circle)(moderator=alice, members=(bea,))
    await sync_to_async(session_open)(circle_id=circle.pk, user=alice)
    a = await RoomClient.connect(
        room_server.url, circle.pk, session_key=await sync_to_async(session_key_for)(alice)
    )
    b = await RoomClient.connect(
        room_server.url, circle.pk, session_key=await sync_to_async(session_key_for)(bea)
    )
    await a.say("hello from alice")
    got = await b.receive("message", text="hello from alice")
    assert got["author"]["member_id"] == alice.pk
    await a.close()
    await b.close()
