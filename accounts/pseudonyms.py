"""What a display name (pseudonym) may be.

Members are known by a pseudonym only. These rules keep people from putting
something that identifies them, or someone else, where the whole circle sees it.
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

MIN_LENGTH = 2
MAX_LENGTH = 30

TOO_SHORT = _("A display name needs at least 2 characters.")
TOO_LONG = _("A display name can be at most 30 characters.")
LOOKS_LIKE_EMAIL = _(
    "That looks like an email address. Please choose a name that doesn't identify you."
)
LOOKS_LIKE_PHONE = _(
    "That looks like a phone number. Please choose a name that doesn't identify you."
)
LOOKS_LIKE_URL = _("That looks like a web address. Please choose a plain name.")
BAD_CHARACTERS = _("Please use letters, numbers, spaces and simple punctuation (- _ . ') only.")
RESERVED = _("That name is kept for the site itself. Please choose another.")

EMAIL_SHAPE = re.compile(r"\S+@\S+|\S+\s*\(?\s*at\s*\)?\s*\S+\s*\(?\s*dot\s*\)?\s*\S+", re.I)
URL_SHAPE = re.compile(
    r"(https?:|ftp:|www\.|//)|"  # a scheme or a www. prefix
    r"\b[a-z0-9-]+\.(com|org|net|io|co|uk|de|fr|info|biz|me|app|dev|ly|gg|tv|xyz|us|ca)\b",
    re.I,
)
# Letters and digits of any script, combining marks, spaces and a few marks.
ALLOWED_CHARACTERS = re.compile(r"^[\w .'\-]+$", re.UNICODE)
RESERVED_NAMES = {
    "admin",
    "administrator",
    "moderator",
    "facilitator",
    "peer circles",
    "system",
    "a former member",
    "support",
    "staff",
}


def normalise_display_name(value: str) -> str:
    """NFKC, trimmed, inner runs of space folded to one."""
    return " ".join(unicodedata.normalize("NFKC", value).split())


def validate_display_name(value: str) -> None:
    name = normalise_display_name(value)
    if len(name) < MIN_LENGTH:
        raise ValidationError(TOO_SHORT, code="too_short")
    if len(name) > MAX_LENGTH:
        raise ValidationError(TOO_LONG, code="too_long")
    if EMAIL_SHAPE.search(name):
        raise ValidationError(LOOKS_LIKE_EMAIL, code="email")
    digits = sum(character.isdigit() for character in name)
    if digits >= 7:
        raise ValidationError(LOOKS_LIKE_PHONE, code="phone")
    if URL_SHAPE.search(name):
        raise ValidationError(LOOKS_LIKE_URL, code="url")
    if not ALLOWED_CHARACTERS.match(name):
        raise ValidationError(BAD_CHARACTERS, code="characters")
    if name.casefold() in RESERVED_NAMES:
        raise ValidationError(RESERVED, code="reserved")
