"""Access checks for the entry points (views now, the live room later)."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from circles.selectors import guidelines_accepted


def guidelines_required(view):
    """Signed in and agreed to the current guidelines, or off to read them first."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if not guidelines_accepted(user=request.user):
            # Come back to the page afterwards, never to a POST-only action.
            back = request.get_full_path() if request.method == "GET" else _page_before(request)
            return redirect(f"{reverse('guidelines')}?{urlencode({'next': back})}")
        return view(request, *args, **kwargs)

    return wrapped


def _page_before(request: HttpRequest) -> str:
    """The same-site page a form was posted from (the circle's page, say), or the list."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return reverse("circles:list")
