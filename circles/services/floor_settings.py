"""A circle's turn-taking numbers, changed by its moderators (for now)."""

from __future__ import annotations

from django.db import transaction

from circles.models import (
    FLOOR_SETTING_FIELDS,
    AuditAction,
    AuditEntry,
    Circle,
    CircleFloorSettings,
)
from circles.services.permissions import require_moderator


@transaction.atomic
def circle_floor_settings_update(*, actor, circle: Circle, values: dict) -> CircleFloorSettings:
    """Validate and store; the next session opens with these. Logged for the circle."""
    require_moderator(circle=circle, user=actor)
    record, _created = CircleFloorSettings.objects.select_for_update().get_or_create(circle=circle)
    changed = [name for name in FLOOR_SETTING_FIELDS if getattr(record, name) != values[name]]
    for name in FLOOR_SETTING_FIELDS:
        setattr(record, name, values[name])
    record.full_clean()
    record.save()
    if changed:
        AuditEntry.objects.create(
            circle=circle,
            actor=actor,
            action=AuditAction.FLOOR_SETTINGS,
            reason=", ".join(changed)[:500],
        )
    return record
