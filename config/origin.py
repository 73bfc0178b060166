"""The live room's origin check: the page's own origin only, plus listed extras.

Channels' AllowedHostsOriginValidator compares host names only, so another
scheme or port on the same host would pass; this compares the whole origin
(scheme, host, port) with the request's own, as protocol.md asks.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def normalised_origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, or None if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def page_scheme(scope: dict) -> str:
    if getattr(settings, "TRUSTED_PROXY_COUNT", 0):
        forwarded = _header(scope, b"x-forwarded-proto")
        if forwarded:
            # The nearest trusted proxy appends last.
            return "https" if forwarded.split(",")[-1].strip().lower() == "https" else "http"
    return "https" if scope.get("scheme") in {"wss", "https"} else "http"


def origin_allowed(scope: dict) -> bool:
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if not origin or not host:
        return False
    claimed = normalised_origin(origin)
    if claimed is None:
        return False
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    own = normalised_origin(f"{page_scheme(scope)}://{host}")
    if claimed == own:
        return True
    extras = {normalised_origin(extra) for extra in settings.CSRF_TRUSTED_ORIGINS}
    return claimed in extras


class SameOriginValidator:
    """Refuse the websocket handshake (HTTP 403) unless the Origin is the page's own."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)
