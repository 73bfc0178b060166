"""Template helpers for pages outside circles (the profile) that show circles."""

from django import template

from circles.selectors import memberships_of_user

register = template.Library()


@register.simple_tag
def memberships_for(user):
    return list(memberships_of_user(user=user))
