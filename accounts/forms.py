from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from accounts.pseudonyms import MAX_LENGTH, normalise_display_name, validate_display_name

NAME_TAKEN = _("Someone already uses that display name. Please try another.")
AGE_REQUIRED = _("Peer Circles is for people aged 16 or older.")


def clean_unique_display_name(value: str, *, exclude_user_id: int | None = None) -> str:
    name = normalise_display_name(value)
    validate_display_name(name)
    taken = User.objects.filter(display_name__iexact=name)
    if exclude_user_id is not None:
        taken = taken.exclude(pk=exclude_user_id)
    if taken.exists():
        raise forms.ValidationError(NAME_TAKEN, code="taken")
    return name


class SignupExtraForm(forms.Form):
    """The fields allauth's sign-up form adds to email and password."""

    display_name = forms.CharField(
        label=_("Display name"),
        max_length=MAX_LENGTH,
        help_text=_(
            "This is how others in your circles will know you. "
            "Please don't use your real name, email or phone number."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "nickname"}),
    )
    age_confirmed = forms.BooleanField(
        label=_("I am 16 or older"),
        error_messages={"required": AGE_REQUIRED},
    )

    field_order = ["display_name", "email", "password1", "password2", "age_confirmed"]

    def clean_display_name(self) -> str:
        return clean_unique_display_name(self.cleaned_data["display_name"])

    def signup(self, request, user) -> None:
        """allauth calls this after saving; the adapter already stored our fields."""


class DisplayNameForm(forms.Form):
    display_name = forms.CharField(
        label=_("Display name"),
        max_length=MAX_LENGTH,
        help_text=_("The name other members see. Please don't use your real name."),
        widget=forms.TextInput(attrs={"autocomplete": "nickname"}),
    )

    def __init__(self, *args, user: User, **kwargs):
        kwargs.setdefault("initial", {"display_name": user.display_name})
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_display_name(self) -> str:
        return clean_unique_display_name(
            self.cleaned_data["display_name"], exclude_user_id=self.user.pk
        )
