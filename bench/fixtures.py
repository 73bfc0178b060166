"""The benchmark's people and circles, in a PostgreSQL database of their own.

    python -m bench.fixtures create --circles 200 --members 10 --out bench/var/fixtures.json
    python -m bench.fixtures reset-presence

Run with DJANGO_SETTINGS_MODULE=config.settings, DEBUG=1, DATABASE_URL pointing at
the bench database and the same SECRET_KEY the servers get (sessions are signed
with it). Members are real users with accepted guidelines and active memberships;
every circle has an open session; every member gets a signed-in session made by
Django's session engine. One password hash is computed once and shared: thousands
of sign-ins would only measure PBKDF2.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from importlib import import_module
from pathlib import Path

MAX_CIRCLE_CAPACITY = 20  # the model's check constraint


def ensure_empty_database(*, host: str, port: int, user: str, name: str) -> None:
    """Drop and create the bench database (never any other one)."""
    import psycopg
    from psycopg import sql

    if not name.startswith("peer_circles_bench"):
        raise SystemExit(
            f"refusing to drop {name!r}: the bench database's name starts with peer_circles_bench"
        )
    with psycopg.connect(
        host=host, port=port, user=user, dbname="postgres", autocommit=True
    ) as connection:
        # FORCE: servers of an interrupted run may still hold connections.
        database = sql.Identifier(name)
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(database))


def create(circles: int, members: int) -> dict:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import User
    from circles.models import (
        Circle,
        GuidelinesAcceptance,
        JoinPolicy,
        Membership,
        MembershipStatus,
        Role,
    )
    from circles.selectors import guidelines_current
    from circles.services.guidelines import guidelines_publish
    from circles.services.sessions import session_open

    if members < 2:
        raise SystemExit("a circle needs at least 2 members: senders take turns")
    now = timezone.now()
    password_hash = make_password(secrets.token_urlsafe(16))  # nobody signs in with it
    with transaction.atomic():
        users = User.objects.bulk_create(
            [
                User(
                    email=f"bench-{number:06d}@bench.invalid",
                    display_name=f"Bench member {number}",
                    password=password_hash,
                    age_confirmed_at=now,
                )
                for number in range(circles * members)
            ],
            batch_size=1000,
        )
        guidelines = guidelines_current() or guidelines_publish(text="Be kind.")
        GuidelinesAcceptance.objects.bulk_create(
            [GuidelinesAcceptance(user=user, guidelines=guidelines) for user in users],
            batch_size=1000,
        )
        groups = [users[index * members : (index + 1) * members] for index in range(circles)]
        circle_rows = Circle.objects.bulk_create(
            [
                Circle(
                    name=f"Bench circle {index}",
                    slug=f"bench-circle-{index}",  # bulk_create skips save(), which makes slugs
                    description="A circle for the benchmark.",
                    topic="other",
                    capacity=min(MAX_CIRCLE_CAPACITY, max(3, members)),
                    join_policy=JoinPolicy.INVITE,
                    created_by=group[0],
                )
                for index, group in enumerate(groups)
            ]
        )
        Membership.objects.bulk_create(
            [
                Membership(
                    circle=circle,
                    user=user,
                    # The first member moderates, so they may open the session.
                    role=Role.MODERATOR if position == 0 else Role.MEMBER,
                    status=MembershipStatus.ACTIVE,
                    joined_at=now,
                )
                for circle, group in zip(circle_rows, groups, strict=True)
                for position, user in enumerate(group)
            ],
            batch_size=1000,
        )
    for circle, group in zip(circle_rows, groups, strict=True):
        session_open(circle_id=circle.pk, user=group[0])

    session_store = import_module(settings.SESSION_ENGINE).SessionStore
    keys: dict[int, str] = {}
    with transaction.atomic():
        for user in users:
            # What the sign-in form would store, made by the session engine itself.
            store = session_store()
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
            keys[user.pk] = store.session_key
    return {
        "session_cookie_name": settings.SESSION_COOKIE_NAME,
        "circles": [
            {
                "id": circle.pk,
                "members": [{"user_id": user.pk, "session_key": keys[user.pk]} for user in group],
            }
            for circle, group in zip(circle_rows, groups, strict=True)
        ],
    }


def reset_presence() -> int:
    """Forget the live connections of servers that have stopped: a new run starts with
    an empty room, as after a restart, rather than waiting 15 s for the sweep."""
    from circles.models import RoomConnection

    deleted, _by_model = RoomConnection.objects.all().delete()
    return deleted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="create N circles x M members and their sessions")
    make.add_argument("--circles", type=int, required=True)
    make.add_argument("--members", type=int, required=True)
    make.add_argument("--out", type=Path, required=True)
    commands.add_parser("reset-presence", help="delete every RoomConnection row")
    args = parser.parse_args(argv)

    import django

    django.setup()
    started = time.monotonic()
    if args.command == "create":
        fixtures = create(args.circles, args.members)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(fixtures))
        print(
            f"created {args.circles} circles x {args.members} members "
            f"in {time.monotonic() - started:.1f} s -> {args.out}",
            file=sys.stderr,
        )
    else:
        reset_presence()


if __name__ == "__main__":
    main()
