"""Writes to accounts. Circles never reach in here; accounts never reach out to circles."""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.pseudonyms import normalise_display_name, validate_display_name


@transaction.atomic
def user_rename(*, user: User, display_name: str) -> User:
    name = normalise_display_name(display_name)
    validate_display_name(name)
    user.display_name = name
    user.full_clean(exclude=["password"])
    user.save(update_fields=["display_name"])
    return user
