import pytest
from django.core.exceptions import ValidationError

from accounts.pseudonyms import normalise_display_name, validate_display_name


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("A", "too_short"),
        ("   B   ", "too_short"),
        ("x" * 31, "too_long"),
        ("sam@example.com", "email"),
        ("sam at example dot com", "email"),
        ("+44 7700 900123", "phone"),
        ("(555) 123-4567", "phone"),
        ("07700900123", "phone"),
        ("https://me.example", "url"),
        ("www.sam.net", "url"),
        ("find me on sam.com", "url"),
        ("Sam <script>", "characters"),
        ("Sam\u200b\u0000", "characters"),
        ("Moderator", "reserved"),
        ("a former member", "reserved"),
    ],
)
def test_each_refused_form_of_display_name_is_refused_with_its_reason(name, code):
    """Emails, phone numbers, web addresses, odd characters and site names are refused."""
    with pytest.raises(ValidationError) as refused:
        validate_display_name(name)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "name", ["Quiet River", "Sam", "Ana-Lucía", "O'Neill", "river_2", "Tomás 42", "李小龍"]
)
def test_plain_pseudonyms_are_accepted(name):
    """Ordinary pseudonyms in any script pass."""
    validate_display_name(name)


def test_display_names_are_trimmed_and_inner_spaces_folded():
    assert normalise_display_name("  Quiet    River ") == "Quiet River"
