"""Demo data for `make run`: six members, a demo circle and two more. Safe to run twice."""

from __future__ import annotations

import json

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from circles.models import Circle, JoinPolicy, Membership, MembershipStatus, Role, Topic
from circles.selectors import guidelines_current
from circles.services.guidelines import guidelines_accept

DEMO_PASSWORD = "circles-demo-2026"  # noqa: S105 - printed on purpose; DEBUG only
DEMO_MEMBERS = 6
DEMO_CIRCLES = [
    {
        "name": "Demo circle",
        "topic": Topic.ANXIETY,
        "join_policy": JoinPolicy.OPEN,
        "description": "A circle to try Peer Circles in: say hello, raise a hand, pass the piece.",
        "members": range(1, DEMO_MEMBERS + 1),
    },
    {
        "name": "Evening grief circle",
        "topic": Topic.GRIEF,
        "join_policy": JoinPolicy.REQUEST,
        "description": "For anyone carrying a loss. Ask to join and a moderator will welcome you.",
        "members": [2, 3],
    },
    {
        "name": "Carers' kitchen table",
        "topic": Topic.CAREGIVING,
        "join_policy": JoinPolicy.INVITE,
        "description": "For people caring for someone they love. Joined by invitation.",
        "members": [3, 4],
    },
]


class Command(BaseCommand):
    help = "Create demo members and circles (only with DEBUG on)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the ids as JSON.")

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo only runs with DEBUG on: it makes well-known passwords.")
        with transaction.atomic():
            users = [self._member(number) for number in range(1, DEMO_MEMBERS + 1)]
            circles = [self._circle(spec, users) for spec in DEMO_CIRCLES]
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "password": DEMO_PASSWORD,
                        "users": [{"id": u.pk, "email": u.email} for u in users],
                        "circles": [{"id": c.pk, "slug": c.slug, "name": c.name} for c in circles],
                    }
                )
            )
            return
        self.stdout.write(
            "Demo ready. Sign in as demo1@example.com … demo6@example.com "
            f"with the password {DEMO_PASSWORD}"
        )

    def _member(self, number: int):
        email = f"demo{number}@example.com"
        user = get_user_model().objects.filter(email=email).first()
        if user is None:
            user = get_user_model().objects.create_user(
                email=email, display_name=f"Demo {number}", password=DEMO_PASSWORD
            )
            user.age_confirmed_at = timezone.now()
            user.save(update_fields=["age_confirmed_at"])
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        current = guidelines_current()
        if current is not None:
            guidelines_accept(user=user, version=current.version)
        return user

    def _circle(self, spec: dict, users: list):
        first = users[spec["members"][0] - 1]
        circle, _created = Circle.objects.get_or_create(
            name=spec["name"],
            defaults={
                "description": spec["description"],
                "topic": spec["topic"],
                "join_policy": spec["join_policy"],
                "created_by": first,
            },
        )
        now = timezone.now()
        for number in spec["members"]:
            is_first = number == spec["members"][0]
            Membership.objects.update_or_create(
                circle=circle,
                user=users[number - 1],
                defaults={
                    "status": MembershipStatus.ACTIVE,
                    "role": Role.MODERATOR if is_first else Role.MEMBER,
                    "willing_to_facilitate": is_first,
                    "joined_at": now,
                },
            )
        return circle
