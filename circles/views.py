"""Pages. Each one parses, checks access, calls one service or selector, and renders."""

from __future__ import annotations

import markdown
import nh3
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from circles import selectors
from circles.access import guidelines_required
from circles.forms import (
    CircleFilterForm,
    CircleForm,
    DeclineForm,
    FloorSettingsForm,
    GuidelinesAcceptForm,
)
from circles.models import JoinPolicy, Membership
from circles.services.circles import circle_create, circle_invite_renew
from circles.services.errors import ServiceError
from circles.services.floor_settings import circle_floor_settings_update
from circles.services.guidelines import guidelines_accept
from circles.services.memberships import (
    membership_approve,
    membership_decline,
    membership_join,
    membership_join_by_invite,
    membership_leave,
    membership_request,
    moderator_appoint,
    moderator_step_down,
)
from circles.services.sessions import session_close, session_open

CIRCLES_PER_PAGE = 24
GUIDELINES_TAGS = {"p", "ul", "ol", "li", "h2", "h3", "h4", "em", "strong", "a", "blockquote"}


def _circle_or_404(slug: str):
    circle = selectors.circle_with_counts(slug=slug)
    if circle is None:
        raise Http404(_("We couldn't find that circle."))
    return circle


def _say_refusal(request: HttpRequest, error: ServiceError) -> None:
    messages.error(request, error.message)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@require_GET
def crisis(request: HttpRequest) -> HttpResponse:
    return render(request, "crisis.html", {"resources": selectors.crisis_resources()})


@require_GET
def circle_list(request: HttpRequest) -> HttpResponse:
    filter_form = CircleFilterForm(request.GET or None)
    circles = selectors.circle_list(user=request.user, **filter_form.filters())
    page = Paginator(circles, CIRCLES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "circles/list.html",
        {"page": page, "filter_form": filter_form, "query_string": _without_page(request)},
    )


def _without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_GET
def circle_detail(request: HttpRequest, slug: str) -> HttpResponse:
    circle = _circle_or_404(slug)
    membership = selectors.membership_of(circle=circle, user=request.user)
    return render(
        request,
        "circles/detail.html",
        {
            "circle": circle,
            "membership": membership,
            "open_session": selectors.session_open_for(circle_id=circle.pk)
            if membership is not None and membership.is_active
            else None,
            "past_sessions": selectors.circle_sessions_closed(circle_id=circle.pk)
            if membership is not None and membership.is_active
            else [],
            "is_full": circle.active_count >= circle.capacity,
            "JoinPolicy": JoinPolicy,
        },
    )


@guidelines_required
@require_http_methods(["GET", "POST"])
def circle_new(request: HttpRequest) -> HttpResponse:
    form = CircleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        circle = circle_create(creator=request.user, **form.cleaned_data)
        messages.success(request, _("Your circle is ready. You're its first moderator."))
        return redirect(circle)
    return render(request, "circles/new.html", {"form": form})


@guidelines_required
@require_POST
def circle_join(request: HttpRequest, slug: str) -> HttpResponse:
    circle = _circle_or_404(slug)
    try:
        if circle.join_policy == JoinPolicy.REQUEST:
            membership_request(circle=circle, user=request.user)
            messages.success(request, _("Your request is on its way to the circle's moderators."))
        else:
            membership_join(circle=circle, user=request.user)
            messages.success(request, _("Welcome to %(circle)s.") % {"circle": circle.name})
    except ServiceError as error:
        _say_refusal(request, error)
    return redirect(circle)


@login_required
@require_POST
def circle_leave(request: HttpRequest, slug: str) -> HttpResponse:
    circle = _circle_or_404(slug)
    try:
        membership_leave(circle=circle, user=request.user)
        messages.success(request, _("You've left %(circle)s. Take care.") % {"circle": circle})
    except ServiceError as error:
        _say_refusal(request, error)
    return redirect(circle)


def _active_member_or_403(request: HttpRequest, circle) -> Membership | HttpResponse:
    membership = selectors.membership_of(circle=circle, user=request.user)
    if membership is None or not membership.is_active:
        return render(request, "circles/members_only.html", {"circle": circle}, status=403)
    return membership


@guidelines_required
@require_GET
def circle_room(request: HttpRequest, slug: str) -> HttpResponse:
    """The live room's page; the room itself speaks over the websocket (room.js)."""
    circle = _circle_or_404(slug)
    membership = _active_member_or_403(request, circle)
    if isinstance(membership, HttpResponse):
        return membership
    return render(request, "circles/room.html", {"circle": circle, "membership": membership})


@guidelines_required
@require_POST
def circle_session_open(request: HttpRequest, slug: str) -> HttpResponse:
    circle = _circle_or_404(slug)
    try:
        session_open(circle_id=circle.pk, user=request.user)
        messages.success(request, _("The session is open. You're facilitating."))
    except ServiceError as error:
        _say_refusal(request, error)
        return redirect(circle)
    return redirect("circles:room", slug=circle.slug)


@guidelines_required
@require_POST
def circle_session_close(request: HttpRequest, slug: str) -> HttpResponse:
    circle = _circle_or_404(slug)
    try:
        session_close(circle_id=circle.pk, user=request.user)
        messages.success(request, _("The session is closed. Thank you for holding the space."))
    except ServiceError as error:
        _say_refusal(request, error)
    return redirect(circle)


@guidelines_required
@require_http_methods(["GET", "POST"])
def circle_floor_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """The circle's turn-taking numbers; its moderators change them (for now)."""
    circle = _circle_or_404(slug)
    membership = _moderator_or_403(request, circle)
    if isinstance(membership, HttpResponse):
        return membership
    current = selectors.floor_settings_of(circle=circle)
    form = FloorSettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        try:
            circle_floor_settings_update(
                actor=request.user, circle=circle, values=form.cleaned_data
            )
        except ServiceError as error:
            _say_refusal(request, error)
        else:
            messages.success(request, _("Saved. The next session opens with these."))
            return redirect("circles:floor_settings", slug=circle.slug)
    return render(request, "circles/floor_settings.html", {"circle": circle, "form": form})


@guidelines_required
@require_GET
def circle_session(request: HttpRequest, slug: str, session_id: int) -> HttpResponse:
    """One session's page: when it met, and how evenly the voices were heard."""
    circle = _circle_or_404(slug)
    membership = _active_member_or_403(request, circle)
    if isinstance(membership, HttpResponse):
        return membership
    session = selectors.session_with_voices(circle_id=circle.pk, session_id=session_id)
    if session is None:
        raise Http404(_("We couldn't find that session."))
    voices = list(session.voices.all())
    return render(
        request,
        "circles/session.html",
        {"circle": circle, "session": session, "voices": voices, "chart": balance_chart(voices)},
    )


CHART_BAR_HEIGHT = 28
CHART_LABEL_WIDTH = 150
CHART_BAR_WIDTH = 300


def balance_chart(voices) -> dict:
    """Bar geometry for the server-rendered SVG: one bar per member, its share in words
    beside it, so the chart reads without colour."""
    widest = max((voice.share for voice in voices), default=0) or 1
    bars = []
    for index, voice in enumerate(voices):
        y = index * CHART_BAR_HEIGHT
        width = round(CHART_BAR_WIDTH * voice.share / widest, 1)
        bars.append(
            {
                "name": voice.display_name,
                "y": y,
                "text_y": y + CHART_BAR_HEIGHT * 0.65,
                "width": width,
                "value_x": CHART_LABEL_WIDTH + width + 8,
                "percent": round(voice.share * 100),
                "messages": voice.messages,
            }
        )
    return {
        "bars": bars,
        "height": max(CHART_BAR_HEIGHT, len(voices) * CHART_BAR_HEIGHT),
        "label_width": CHART_LABEL_WIDTH,
        "bar_width": CHART_BAR_WIDTH,
        "width": CHART_LABEL_WIDTH + CHART_BAR_WIDTH + 120,
        "bar_height": CHART_BAR_HEIGHT - 8,
    }


@guidelines_required
@require_GET
def circle_members(request: HttpRequest, slug: str) -> HttpResponse:
    circle = _circle_or_404(slug)
    membership = _active_member_or_403(request, circle)
    if isinstance(membership, HttpResponse):
        return membership
    return render(
        request,
        "circles/members.html",
        {
            "circle": circle,
            "membership": membership,
            "members": selectors.circle_members(circle=circle),
        },
    )


def _moderator_or_403(request: HttpRequest, circle) -> Membership | HttpResponse:
    membership = selectors.membership_of(circle=circle, user=request.user)
    if membership is None or not membership.is_moderator:
        return render(request, "circles/moderators_only.html", {"circle": circle}, status=403)
    return membership


@guidelines_required
@require_GET
def circle_requests(request: HttpRequest, slug: str) -> HttpResponse:
    circle = _circle_or_404(slug)
    membership = _moderator_or_403(request, circle)
    if isinstance(membership, HttpResponse):
        return membership
    return render(
        request,
        "circles/requests.html",
        {
            "circle": circle,
            "requests": selectors.circle_pending_requests(circle=circle),
            "decline_form": DeclineForm(),
        },
    )


def _membership_or_404(circle, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user", "circle"), pk=membership_id, circle=circle
    )


@guidelines_required
@require_POST
def request_approve(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    circle = _circle_or_404(slug)
    pending = _membership_or_404(circle, membership_id)
    try:
        membership_approve(actor=request.user, membership=pending)
        messages.success(request, _("%(name)s is now a member.") % {"name": pending.user})
    except ServiceError as error:
        _say_refusal(request, error)
    return redirect("circles:requests", slug=circle.slug)


@guidelines_required
@require_POST
def request_decline(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    circle = _circle_or_404(slug)
    pending = _membership_or_404(circle, membership_id)
    form = DeclineForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        membership_decline(actor=request.user, membership=pending, reason=reason)
        messages.success(request, _("The request was declined."))
    except ServiceError as error:
        _say_refusal(request, error)
    return redirect("circles:requests", slug=circle.slug)


@guidelines_required
@require_http_methods(["GET", "POST"])
def circle_invite(request: HttpRequest, slug: str) -> HttpResponse:
    """The moderators' view of the invite link, with a button to renew it."""
    circle = _circle_or_404(slug)
    membership = _moderator_or_403(request, circle)
    if isinstance(membership, HttpResponse):
        return membership
    if request.method == "POST":
        try:
            circle_invite_renew(actor=request.user, circle=circle)
            messages.success(request, _("Here's a fresh link. The old one no longer works."))
        except ServiceError as error:
            _say_refusal(request, error)
        return redirect("circles:invite", slug=circle.slug)
    invite_url = request.build_absolute_uri(circle_invite_path(circle.invite_token))
    return render(request, "circles/invite.html", {"circle": circle, "invite_url": invite_url})


def circle_invite_path(token: str) -> str:
    return reverse("circles:invite_accept", kwargs={"token": token})


@guidelines_required
@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    circle = selectors.circle_by_invite(token=token)
    if circle is None:
        return render(request, "circles/invite_invalid.html", status=404)
    if request.method == "POST":
        try:
            membership_join_by_invite(circle=circle, token=token, user=request.user)
            messages.success(request, _("Welcome to %(circle)s.") % {"circle": circle.name})
        except ServiceError as error:
            _say_refusal(request, error)
        return redirect(circle)
    membership = selectors.membership_of(circle=circle, user=request.user)
    return render(
        request, "circles/invite_accept.html", {"circle": circle, "membership": membership}
    )


@guidelines_required
@require_POST
def member_make_moderator(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    circle = _circle_or_404(slug)
    target = _membership_or_404(circle, membership_id)
    try:
        moderator_appoint(actor=request.user, membership=target)
        messages.success(request, _("%(name)s is now a moderator too.") % {"name": target.user})
    except ServiceError as error:
        _say_refusal(request, error)
    return redirect("circles:members", slug=circle.slug)


@guidelines_required
@require_POST
def moderator_leave_role(request: HttpRequest, slug: str) -> HttpResponse:
    circle = _circle_or_404(slug)
    try:
        moderator_step_down(circle=circle, user=request.user)
        messages.success(request, _("You've stepped down as moderator. Thank you."))
    except ServiceError as error:
        _say_refusal(request, error)
    return redirect("circles:members", slug=circle.slug)


@login_required
@require_http_methods(["GET", "POST"])
def guidelines(request: HttpRequest) -> HttpResponse:
    current = selectors.guidelines_current()
    if current is None:
        raise Http404(_("The guidelines aren't written yet."))
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    form = GuidelinesAcceptForm(request.POST or None, initial={"version": current.version})
    if request.method == "POST" and form.is_valid():
        try:
            guidelines_accept(user=request.user, version=form.cleaned_data["version"])
        except ServiceError as error:
            _say_refusal(request, error)
            return redirect(request.get_full_path())
        messages.success(request, _("Thank you. Welcome in."))
        return redirect(next_url or "circles:list")
    return render(
        request,
        "guidelines.html",
        {
            "guidelines": current,
            "guidelines_html": render_guidelines(current.text),
            "accepted": selectors.guidelines_accepted(user=request.user),
            "form": form,
            "next": next_url,
        },
    )


def render_guidelines(text: str) -> str:
    """Markdown to HTML, then cleaned down to a few safe tags."""
    html = markdown.markdown(text, output_format="html")
    cleaned = nh3.clean(
        html,
        tags=GUIDELINES_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"https", "http", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(cleaned)  # noqa: S308 - cleaned by nh3 above
