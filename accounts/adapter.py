from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.utils import timezone


class AccountAdapter(DefaultAccountAdapter):
    """Store the pseudonym and the age confirmation with the new account, in one save."""

    def save_user(self, request, user, form, commit=True):
        user.display_name = form.cleaned_data["display_name"]
        user.age_confirmed_at = timezone.now()
        return super().save_user(request, user, form, commit=commit)

    def populate_username(self, request, user) -> None:
        """There is no username: people sign in by email and are seen by pseudonym."""
