from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.forms import DisplayNameForm
from accounts.services import user_rename


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    form = DisplayNameForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user_rename(user=request.user, display_name=form.cleaned_data["display_name"])
        messages.success(
            request, _("You're now known as %(name)s.") % {"name": request.user.display_name}
        )
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form})
