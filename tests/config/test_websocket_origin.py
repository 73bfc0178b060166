"""The live room's handshake accepts the page's own origin only (protocol.md).

These drive the ASGI stack in-process; the same matrix against a real daphne
process comes with the live room.
"""

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from config.origin import SameOriginValidator, origin_allowed


def _scope(origin: str | None, host: str = "127.0.0.1:8123", scheme: str = "ws", **extra):
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8123", True),
        ("HTTP://127.0.0.1:8123", True),
        ("http://evil.test:8123", False),
        ("null", False),
        (None, False),
        ("", False),
        ("https://127.0.0.1:8123", False),
        ("http://127.0.0.1:8124", False),
        ("http://127.0.0.1", False),
        ("http://127.0.0.1.evil.test:8123", False),
        ("http://user@127.0.0.1:8123", False),
        ("http://127.0.0.1:8123/path", False),
        ("http://127.0.0.1:99999", False),
    ],
)
def test_only_the_pages_own_origin_is_allowed(origin, allowed):
    assert origin_allowed(_scope(origin)) is allowed


def test_a_host_not_in_allowed_hosts_is_refused_even_with_a_matching_origin():
    scope = _scope("http://evil.test:8123", host="evil.test:8123")
    assert origin_allowed(scope) is False


def test_default_ports_match_an_origin_without_a_port():
    assert origin_allowed(_scope("http://localhost", host="localhost"))
    assert origin_allowed(_scope("http://localhost:80", host="localhost"))


def test_the_scheme_comes_from_the_proxy_only_when_a_proxy_is_trusted():
    scope = _scope("https://localhost", host="localhost", **{"x-forwarded-proto": "https"})
    assert origin_allowed(scope) is False
    with override_settings(TRUSTED_PROXY_COUNT=1):
        assert origin_allowed(scope) is True


def test_extra_trusted_origins_are_allowed():
    scope = _scope("https://app.example.org", host="localhost")
    assert origin_allowed(scope) is False
    with override_settings(CSRF_TRUSTED_ORIGINS=["https://app.example.org"]):
        assert origin_allowed(scope) is True


async def _accepting_app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})


@pytest.mark.asyncio
async def test_a_foreign_origin_is_refused_before_the_handshake_completes():
    app = SameOriginValidator(_accepting_app)
    refused = WebsocketCommunicator(
        app, "/ws/circles/1/", headers=[(b"host", b"127.0.0.1:8123"), (b"origin", b"http://x.test")]
    )
    connected, _code = await refused.connect()
    assert connected is False
    allowed = WebsocketCommunicator(
        app,
        "/ws/circles/1/",
        headers=[(b"host", b"127.0.0.1:8123"), (b"origin", b"http://127.0.0.1:8123")],
    )
    connected, _code = await allowed.connect()
    assert connected is True
    await allowed.disconnect()
