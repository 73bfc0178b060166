"""Websocket routes: one live room per circle (docs/protocol.md)."""

from django.urls import path

from circles.consumers import RoomConsumer

websocket_urlpatterns = [
    path("ws/circles/<int:circle_id>/", RoomConsumer.as_asgi()),
]
