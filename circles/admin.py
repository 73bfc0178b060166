from django.contrib import admin
from django.db import models

from circles.models import (
    AuditEntry,
    Circle,
    CircleFloorSettings,
    CommunityGuidelines,
    CrisisResource,
    FloorLogEntry,
    FloorState,
    GuidelinesAcceptance,
    Membership,
    Message,
    RoomConnection,
    Session,
    SessionVoice,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Kept by the live room itself; shown for looking, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "status", "joined_at", "willing_to_facilitate"]
    raw_id_fields = ["user"]


@admin.register(Circle)
class CircleAdmin(admin.ModelAdmin):
    list_display = ["name", "topic", "join_policy", "capacity", "created_at"]
    list_filter = ["topic", "join_policy"]
    search_fields = ["name", "description", "slug"]
    readonly_fields = ["slug", "created_at"]
    raw_id_fields = ["created_by"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "circle", "role", "status", "joined_at", "willing_to_facilitate"]
    list_filter = ["role", "status", "willing_to_facilitate"]
    search_fields = ["user__display_name", "user__email", "circle__name"]
    list_select_related = ["user", "circle"]
    raw_id_fields = ["user", "circle"]


@admin.register(CommunityGuidelines)
class CommunityGuidelinesAdmin(admin.ModelAdmin):
    """Adding a version publishes it; a published version is never edited or deleted,
    since people agreed to exactly that text."""

    list_display = ["version", "published_at", "summary_of_changes"]
    readonly_fields = ["version"]
    fields = ["version", "text", "summary_of_changes", "published_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(GuidelinesAcceptance)
class GuidelinesAcceptanceAdmin(admin.ModelAdmin):
    list_display = ["user", "guidelines", "accepted_at"]
    list_filter = ["guidelines"]
    search_fields = ["user__display_name", "user__email"]
    list_select_related = ["user", "guidelines"]
    raw_id_fields = ["user"]


@admin.register(CrisisResource)
class CrisisResourceAdmin(admin.ModelAdmin):
    list_display = ["name", "contact", "region", "url", "position"]
    list_editable = ["position"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    search_fields = ["name", "region"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "circle", "actor", "action", "subject", "reason"]
    list_filter = ["action"]
    search_fields = ["circle__name", "actor__display_name", "subject__display_name"]
    list_select_related = ["circle", "actor", "subject"]


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["circle", "status", "facilitator", "opened_at", "closed_at"]
    list_filter = ["status"]
    search_fields = ["circle__name", "facilitator__display_name"]
    list_select_related = ["circle", "facilitator"]
    raw_id_fields = ["circle", "facilitator", "opened_by", "closed_by"]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    """Message metadata only: what members say is not browsable here. Hidden text
    reaches admins through the moderation queue (a later issue), not this list."""

    list_display = ["circle", "seq", "kind", "author", "created_at", "hidden_at"]
    list_filter = ["kind"]
    search_fields = ["circle__name", "author__display_name"]
    list_select_related = ["circle", "author"]
    fields = ["circle", "session", "seq", "kind", "author", "created_at", "hidden_at"]


@admin.register(CircleFloorSettings)
class CircleFloorSettingsAdmin(admin.ModelAdmin):
    list_display = ["circle", "default_mode", "turn_seconds", "turn_messages", "auto_advance"]
    list_filter = ["default_mode", "auto_advance"]
    search_fields = ["circle__name"]
    list_select_related = ["circle"]
    raw_id_fields = ["circle"]


@admin.register(FloorState)
class FloorStateAdmin(ReadOnlyAdmin):
    list_display = ["session", "mode", "paused", "speaker", "turn_ends_at", "version"]
    list_filter = ["mode", "paused"]
    search_fields = ["session__circle__name"]
    list_select_related = ["session__circle", "speaker"]


@admin.register(FloorLogEntry)
class FloorLogEntryAdmin(ReadOnlyAdmin):
    list_display = ["floor", "version", "action", "at"]
    list_filter = ["action"]
    search_fields = ["floor__session__circle__name"]
    list_select_related = ["floor"]


@admin.register(SessionVoice)
class SessionVoiceAdmin(ReadOnlyAdmin):
    list_display = ["session", "display_name", "messages", "characters", "floor_seconds", "share"]
    search_fields = ["display_name", "session__circle__name"]
    list_select_related = ["session__circle"]


@admin.register(RoomConnection)
class RoomConnectionAdmin(ReadOnlyAdmin):
    list_display = ["circle", "user", "connected_at", "seen_at", "replaced"]
    list_filter = ["replaced"]
    search_fields = ["circle__name", "user__display_name"]
    list_select_related = ["circle", "user"]
    exclude = ["channel_name"]
