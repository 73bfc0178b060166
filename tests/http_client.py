"""A small HTTP client for tests against a live server: cookies, redirects, and
the CSRF token taken from a form's page, as a browser would."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

from django.conf import settings

from tests.live_server import LiveServer

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Browser:
    """Just enough of a browser: cookies, redirects, CSRF tokens from forms."""

    def __init__(self, server: LiveServer):
        self.server = server
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.session_keys: set[str] = set()  # every session cookie this browser was given

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def _note_session(self) -> None:
        key = self.cookie(settings.SESSION_COOKIE_NAME)
        if key:
            self.session_keys.add(key)

    def get(self, path: str) -> tuple[int, str, str]:
        """(status, final URL, body) of a GET, following redirects."""
        # The test server's own http:// address, never a file: or custom scheme.
        return self._open(urllib.request.Request(self.server.url + path))  # noqa: S310

    def post(self, path: str, fields: dict, *, csrf_from: str) -> tuple[int, str, str]:
        token = CSRF_FIELD.search(csrf_from)
        assert token, "no CSRF token in the form's page"
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
        request = urllib.request.Request(  # noqa: S310 (the test server's http:// address)
            self.server.url + path,
            data=body,
            headers={"Referer": self.server.url + path},
            method="POST",
        )
        return self._open(request)

    def _open(self, request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=20) as response:
                result = response.status, response.url, response.read().decode()
        except urllib.error.HTTPError as error:
            result = error.code, error.url, error.read().decode()
        self._note_session()
        return result
