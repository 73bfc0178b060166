"""Who may act on a circle: asked by every service that acts for a role."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from circles.models import Circle, Membership, MembershipStatus, Role
from circles.services.errors import ServiceError

NOT_MODERATOR = _("Only the circle's moderators can do that.")


def require_moderator(*, circle: Circle, user) -> None:
    if not Membership.objects.filter(
        circle=circle, user=user, status=MembershipStatus.ACTIVE, role=Role.MODERATOR
    ).exists():
        raise ServiceError(NOT_MODERATOR, code="forbidden")
