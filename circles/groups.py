"""Names shared by the senders (circles/events.py) and the receivers (consumers)."""


def circle_group(circle_id: int) -> str:
    return f"circle.{circle_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def access_epoch_key(user_id: int) -> str:
    """A cache key that changes whenever this person's access may have changed."""
    return f"room-access:{user_id}"
