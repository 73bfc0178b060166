"""The community guidelines: publishing a version and accepting it."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from circles.models import CommunityGuidelines, GuidelinesAcceptance
from circles.services.errors import ServiceError

NOT_CURRENT = _("The guidelines changed while you were reading. Please read the new version.")


@transaction.atomic
def guidelines_publish(*, text: str, summary_of_changes: str = "") -> CommunityGuidelines:
    """A new current version: everyone is asked to accept it before taking part again."""
    guidelines = CommunityGuidelines(text=text.strip(), summary_of_changes=summary_of_changes)
    guidelines.full_clean(exclude=["version"])
    guidelines.save()
    return guidelines


@transaction.atomic
def guidelines_accept(*, user, version: int) -> GuidelinesAcceptance:
    current = CommunityGuidelines.objects.order_by("-version").first()
    if current is None or current.version != version:
        raise ServiceError(NOT_CURRENT, code="conflict")
    acceptance, _created = GuidelinesAcceptance.objects.get_or_create(user=user, guidelines=current)
    return acceptance
