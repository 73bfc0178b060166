"""ASGI entry point of the baseline chat, served by daphne like Peer Circles:

python -m config.serve -b 127.0.0.1 -p PORT bench.baseline.asgi:application
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.baseline.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from bench.baseline.consumers import ChatConsumer  # noqa: E402


async def ready_page(scope, receive, send) -> None:
    """Any HTTP request: 200 "ready", so the harness knows the process is serving."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ready"})


application = ProtocolTypeRouter(
    {
        "http": ready_page,
        # The tutorial's origin check; it costs one comparison per handshake.
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/circles/<int:circle_id>/", ChatConsumer.as_asgi())])
        ),
    }
)
