from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from circles.models import FLOOR_SETTING_FIELDS, Circle, CircleFloorSettings, Topic


class CircleForm(forms.ModelForm):
    class Meta:
        model = Circle
        fields = ["name", "description", "topic", "capacity", "join_policy"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 5}),
            "join_policy": forms.RadioSelect,
        }

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if len(name) < 3:
            raise forms.ValidationError(_("Please give the circle a name of 3 letters or more."))
        return name


class CircleFilterForm(forms.Form):
    """The circle list's filter. Unknown topics are ignored rather than erroring."""

    q = forms.CharField(label=_("Search"), required=False, max_length=80)
    topic = forms.ChoiceField(
        label=_("Topic"),
        required=False,
        choices=[("", _("All topics")), *Topic.choices],
    )

    def filters(self) -> dict[str, str]:
        if not self.is_valid():
            return {"topic": "", "search": ""}
        return {"topic": self.cleaned_data["topic"], "search": self.cleaned_data["q"].strip()}


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label=_("A short, kind note (optional)"), required=False, max_length=500
    )


class GuidelinesAcceptForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    agree = forms.BooleanField(
        label=_("I've read the guidelines and will follow them"),
        error_messages={"required": _("Please tick the box to say you agree.")},
    )


class FloorSettingsForm(forms.ModelForm):
    class Meta:
        model = CircleFloorSettings
        fields = FLOOR_SETTING_FIELDS
        widgets = {"default_mode": forms.RadioSelect}

    def clean(self):
        cleaned = super().clean()
        turn = cleaned.get("turn_seconds")
        warning = cleaned.get("turn_warning_seconds")
        if turn and warning and warning >= turn:
            self.add_error(
                "turn_warning_seconds",
                _("The reminder needs to come before the turn ends: make it shorter than a turn."),
            )
        return cleaned
