"""Websocket routes: the live room arrives with protocol v1."""

websocket_urlpatterns: list = []
