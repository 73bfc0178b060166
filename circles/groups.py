"""Names shared by the senders (circles/events.py) and the receivers (consumers)."""


def circle_group(circle_id: int) -> str:
    return f"circle.{circle_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


# Moved whenever anyone's epoch moves: the hub reads this one key each second and
# the members' own keys only when it changed.
ACCESS_GENERATION_KEY = "room-access:generation"


def access_epoch_key(user_id: int) -> str:
    """A cache key that changes whenever this person's access may have changed."""
    return f"room-access:{user_id}"
