from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

MIN_CAPACITY = 3
MAX_CAPACITY = 20
DEFAULT_CAPACITY = 12


def new_invite_token() -> str:
    return secrets.token_urlsafe(settings.CIRCLE_INVITE_TOKEN_BYTES)


class Topic(models.TextChoices):
    ANXIETY = "anxiety", _("Anxiety and worry")
    DEPRESSION = "depression", _("Low mood and depression")
    GRIEF = "grief", _("Grief and loss")
    RECOVERY = "recovery", _("Addiction recovery")
    CAREGIVING = "caregiving", _("Caring for someone")
    CHRONIC_ILLNESS = "chronic_illness", _("Living with illness or pain")
    PARENTING = "parenting", _("Parenting")
    IDENTITY = "identity", _("Identity and belonging")
    OTHER = "other", _("Something else")


class JoinPolicy(models.TextChoices):
    OPEN = "open", _("Anyone can join")
    REQUEST = "request", _("Ask to join")
    INVITE = "invite", _("By invitation")


LOCKED_COUNTERS = {"last_seq", "access_version"}


class Circle(models.Model):
    """A small group that meets to support each other."""

    name = models.CharField(_("name"), max_length=80)
    slug = models.SlugField(_("slug"), max_length=90, unique=True, editable=False)
    description = models.TextField(_("about this circle"), max_length=2000)
    topic = models.CharField(_("topic"), max_length=32, choices=Topic.choices)
    capacity = models.PositiveSmallIntegerField(
        _("how many members"),
        default=DEFAULT_CAPACITY,
        validators=[MinValueValidator(MIN_CAPACITY), MaxValueValidator(MAX_CAPACITY)],
        help_text=_("Between 3 and 20. Circles of 5 to 12 tend to work best."),
    )
    join_policy = models.CharField(
        _("who can join"), max_length=16, choices=JoinPolicy.choices, default=JoinPolicy.OPEN
    )
    invite_token = models.CharField(
        max_length=64, unique=True, default=new_invite_token, editable=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # The seq of the circle's newest message: bumped under this row's lock, so every
    # message of a circle gets the next number with no gaps.
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    # Bumped whenever someone loses access; every broadcast carries it, so a
    # consumer re-checks its member before forwarding anything sent after a removal.
    access_version = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity__gte=MIN_CAPACITY) & Q(capacity__lte=MAX_CAPACITY),
                name="circles_circle_capacity_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = unique_slug(self.name)
        if not self._state.adding and kwargs.get("update_fields") is None:
            # The counters move only under the row lock, in services: a save from a
            # stale copy (the admin, say) must never wind them back.
            kwargs["update_fields"] = [
                field.attname
                for field in self._meta.concrete_fields
                if not field.primary_key and field.attname not in LOCKED_COUNTERS
            ]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("circles:detail", kwargs={"slug": self.slug})


def unique_slug(name: str) -> str:
    base = slugify(name)[:80] or "circle"
    slug = base
    while Circle.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


class Role(models.TextChoices):
    MEMBER = "member", _("Member")
    MODERATOR = "moderator", _("Moderator")


class MembershipStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    PENDING = "pending", _("Waiting for a moderator")
    REMOVED = "removed", _("Removed")
    BANNED = "banned", _("Banned")


class Membership(models.Model):
    """One person's place in one circle."""

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    status = models.CharField(
        max_length=16, choices=MembershipStatus.choices, default=MembershipStatus.ACTIVE
    )
    joined_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the membership became active.")
    )
    requested_at = models.DateTimeField(default=timezone.now)
    # The circle's last seq when the membership became active: members see only
    # messages after it, never what was said before they arrived.
    visible_after_seq = models.PositiveBigIntegerField(default=0)
    willing_to_facilitate = models.BooleanField(_("willing to facilitate"), default=False)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["circle", "user"], name="circles_one_membership"),
        ]
        indexes = [models.Index(fields=["circle", "status"], name="circles_membership_status")]

    def __str__(self) -> str:
        return f"{self.user} in {self.circle} ({self.get_status_display()})"

    @property
    def is_active(self) -> bool:
        return self.status == MembershipStatus.ACTIVE

    @property
    def is_moderator(self) -> bool:
        return self.is_active and self.role == Role.MODERATOR

    @property
    def is_shut_out(self) -> bool:
        """Removed or banned: no way back in through any join path."""
        return self.status in {MembershipStatus.REMOVED, MembershipStatus.BANNED}


class SessionStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class Session(models.Model):
    """One meeting of a circle. At most one is open per circle."""

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="sessions")
    status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.SCHEDULED
    )
    facilitator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    scheduled_for = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Stored when the session closes, so retention never erases the balance.
    gini = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["circle"],
                condition=Q(status="open"),
                name="circles_one_open_session_per_circle",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.circle} session {self.pk} ({self.get_status_display()})"


class MessageKind(models.TextChoices):
    SHARE = "share", _("Share")
    FACILITATION = "facilitation", _("Facilitation")
    SYSTEM = "system", _("System")


MAX_MESSAGE_LENGTH = 4000


class Message(models.Model):
    """Something said in a session. `seq` orders a circle's messages: 1, 2, 3 … no gaps."""

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="messages")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    kind = models.CharField(max_length=16, choices=MessageKind.choices, default=MessageKind.SHARE)
    text = models.TextField(max_length=MAX_MESSAGE_LENGTH)
    client_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    hidden_at = models.DateTimeField(null=True, blank=True)
    hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    hidden_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["circle", "seq"]
        constraints = [
            # Also the index for "the last 50 of this circle" and "everything after seq N".
            models.UniqueConstraint(fields=["circle", "seq"], name="circles_message_seq_unique"),
            models.UniqueConstraint(
                fields=["author", "client_id"], name="circles_message_client_id_once"
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.seq} in {self.circle_id}"


class RoomConnection(models.Model):
    """One open websocket in a circle's room, kept alive by its consumer's heartbeat.

    Presence is derived from these rows, so every process agrees on it; a process
    that dies stops beating and its rows lapse after a few seconds.
    """

    channel_name = models.CharField(max_length=200, unique=True)
    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connected_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)
    # Closed because the member opened too many: its consumer closes with 4409.
    replaced = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["circle", "seen_at"], name="circles_roomconn_circle_seen"),
            models.Index(fields=["user", "connected_at"], name="circles_roomconn_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.circle_id}"


class FloorMode(models.TextChoices):
    OPEN = "open", _("Open floor")
    QUEUE = "queue", _("Raised hands")
    ROUND = "round", _("Round with a talking piece")


# The numbers a circle sets for its floor, in the order its settings page shows them.
FLOOR_SETTING_FIELDS = [
    "default_mode",
    "turn_seconds",
    "turn_messages",
    "auto_advance",
    "turn_warning_seconds",
    "disconnect_grace_seconds",
    "consecutive_cap",
    "consecutive_wait_seconds",
    "share_window",
    "share_multiple",
    "share_minimum",
    "share_wait_seconds",
]


class CircleFloorSettings(models.Model):
    """A circle's numbers for turn-taking (docs/turn-taking.md gives each default)."""

    circle = models.OneToOneField(Circle, on_delete=models.CASCADE, related_name="floor_settings")
    default_mode = models.CharField(
        _("how the floor starts"), max_length=8, choices=FloorMode.choices, default=FloorMode.OPEN
    )
    consecutive_cap = models.PositiveSmallIntegerField(
        _("messages in a row before a pause (open floor)"),
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
    )
    consecutive_wait_seconds = models.PositiveSmallIntegerField(
        _("pause after that many in a row (seconds)"),
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(600)],
    )
    share_window = models.PositiveSmallIntegerField(
        _("recent shares looked at for balance"),
        default=20,
        validators=[MinValueValidator(5), MaxValueValidator(100)],
    )
    share_multiple = models.DecimalField(
        _("how many times a fair share is too much"),
        max_digits=3,
        decimal_places=1,
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    share_minimum = models.PositiveSmallIntegerField(
        _("fewest shares before that applies"),
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
    )
    share_wait_seconds = models.PositiveSmallIntegerField(
        _("pause when over a fair share (seconds)"),
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(600)],
    )
    turn_seconds = models.PositiveSmallIntegerField(
        _("longest turn (seconds)"),
        default=120,
        validators=[MinValueValidator(30), MaxValueValidator(900)],
    )
    turn_messages = models.PositiveSmallIntegerField(
        _("most messages in one turn"),
        default=6,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
    )
    auto_advance = models.BooleanField(_("pass the floor on by itself"), default=True)
    turn_warning_seconds = models.PositiveSmallIntegerField(
        _("gentle reminder before a turn ends (seconds)"),
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(300)],
    )
    disconnect_grace_seconds = models.PositiveSmallIntegerField(
        _("how long a disconnected speaker keeps the floor (seconds)"),
        default=15,
        validators=[MinValueValidator(5), MaxValueValidator(120)],
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = _("circle floor settings")

    def __str__(self) -> str:
        return f"Floor settings of {self.circle}"


class FloorState(models.Model):
    """The floor of one session: who may speak, in one row, changed only under the
    circle's row lock (every writer takes that lock first).

    The tallies (turns taken, floor time, recent shares …) live in `tallies`, the
    raised hands in `hands` (raise order), every transition in FloorLogEntry: one
    row read and one row written per transition.
    """

    session = models.OneToOneField(
        Session, on_delete=models.CASCADE, primary_key=True, related_name="floor"
    )
    version = models.PositiveBigIntegerField(default=1)
    mode = models.CharField(max_length=8, choices=FloorMode.choices, default=FloorMode.OPEN)
    paused = models.BooleanField(default=False)
    paused_until = models.DateTimeField(null=True, blank=True)
    speaker = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    turn_started_at = models.DateTimeField(null=True, blank=True)
    turn_ends_at = models.DateTimeField(null=True, blank=True)
    turn_seconds_left = models.FloatField(null=True, blank=True)
    turn_messages_left = models.PositiveSmallIntegerField(null=True, blank=True)
    round_order = models.JSONField(default=list, blank=True)
    round_position = models.PositiveSmallIntegerField(null=True, blank=True)
    round_phase = models.CharField(max_length=8, blank=True)
    round_passed = models.JSONField(default=list, blank=True)
    hands = models.JSONField(default=list, blank=True)
    tallies = models.JSONField(default=dict, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The sweep settles only the floors that need it: when time alone next moves
    # this floor (a turn or pause ending, a turn warning, a gone speaker's grace) ...
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # ... or when presence changed since the last settle: every change bumps
    # `presence_serial` (without the circle's lock), every settle records the
    # serial it saw in `settled_serial`. Two columns, so neither write loses the other.
    presence_serial = models.PositiveBigIntegerField(default=0)
    settled_serial = models.PositiveBigIntegerField(default=0)
    # The version of the last `floor` frame broadcast: a transition that changes
    # nothing people see (a share's tallies) is not broadcast, and `tick` reports
    # this version so clients never think they missed one.
    shown_version = models.PositiveBigIntegerField(default=0)

    # Written by `presence_serial` bumps only; never by a transition's save.
    NOT_SAVED_BY_TRANSITIONS = frozenset({"session", "presence_serial"})

    class Meta:
        indexes = [
            # The sweep's second question, answered without reading settled floors.
            models.Index(
                fields=["session"],
                condition=Q(presence_serial__gt=F("settled_serial")),
                name="circles_floor_presence_moved",
            ),
        ]

    def __str__(self) -> str:
        return f"floor of session {self.session_id} (v{self.version})"


class FloorLogEntry(models.Model):
    """Append-only: every transition of a floor, enough to replay it through the policy."""

    floor = models.ForeignKey(FloorState, on_delete=models.CASCADE, related_name="log")
    version = models.PositiveBigIntegerField()
    action = models.CharField(max_length=32)
    input = models.JSONField(default=dict)
    at = models.DateTimeField()
    state = models.JSONField()

    class Meta:
        ordering = ["floor", "version"]
        constraints = [
            models.UniqueConstraint(fields=["floor", "version"], name="circles_floor_log_once"),
        ]

    def __str__(self) -> str:
        return f"{self.action} -> v{self.version}"


class SessionVoice(models.Model):
    """One member's voice in a closed session, kept when messages are not."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="voices")
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    display_name = models.CharField(max_length=30)
    messages = models.PositiveIntegerField(default=0)
    characters = models.PositiveIntegerField(default=0)
    floor_seconds = models.FloatField(default=0)
    share = models.FloatField(default=0)

    class Meta:
        ordering = ["-messages", "display_name"]

    def __str__(self) -> str:
        return f"{self.display_name}: {self.messages}"


class CommunityGuidelines(models.Model):
    """One version of the guidelines every member accepts; the newest published is current."""

    version = models.PositiveIntegerField(unique=True, editable=False)
    text = models.TextField(
        help_text=_("Markdown: paragraphs, lists, headings, emphasis and links. No raw HTML.")
    )
    summary_of_changes = models.CharField(max_length=200, blank=True)
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        verbose_name = _("community guidelines")
        verbose_name_plural = _("community guidelines")

    def __str__(self) -> str:
        return f"Community guidelines, version {self.version}"

    def save(self, *args, **kwargs) -> None:
        if self.version is None:
            latest = CommunityGuidelines.objects.aggregate(models.Max("version"))["version__max"]
            self.version = (latest or 0) + 1
        super().save(*args, **kwargs)


class GuidelinesAcceptance(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="guidelines_acceptances"
    )
    guidelines = models.ForeignKey(
        CommunityGuidelines, on_delete=models.PROTECT, related_name="acceptances"
    )
    accepted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "guidelines"], name="circles_accept_guidelines_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} accepted version {self.guidelines.version}"


class CrisisResource(models.Model):
    """A place to turn to in a crisis, kept by the admins."""

    name = models.CharField(max_length=120)
    contact = models.CharField(max_length=120, help_text=_("A phone number or text line."))
    url = models.URLField(blank=True)
    region = models.CharField(max_length=80, blank=True, help_text=_("Where it serves."))
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class AuditAction(models.TextChoices):
    JOIN_APPROVE = "join_approve", _("approved a request to join")
    JOIN_DECLINE = "join_decline", _("declined a request to join")
    MODERATOR_APPOINT = "moderator_appoint", _("made a member a moderator")
    MODERATOR_STEP_DOWN = "moderator_step_down", _("stepped down as moderator")
    INVITE_RENEW = "invite_renew", _("renewed the invite link")
    MEMBER_REMOVE = "member_remove", _("removed a member")
    SESSION_OPEN = "session_open", _("opened a session")
    SESSION_CLOSE = "session_close", _("closed a session")
    FLOOR_GRANT = "floor_grant", _("gave the floor out of turn")
    FLOOR_NEXT = "floor_next", _("moved the floor on")
    FLOOR_PAUSE = "floor_pause", _("paused sharing")
    FLOOR_RESUME = "floor_resume", _("resumed sharing")
    FLOOR_MODE = "floor_mode", _("changed how the floor works")
    NUDGE = "nudge", _("sent a private note")
    FLOOR_SETTINGS = "floor_settings", _("changed the floor settings")


class AuditEntry(models.Model):
    """An act by someone holding a role, kept for the circle to see (append-only)."""

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        return f"{self.actor} {self.get_action_display()} ({self.circle})"
