"""Sign-in events that the live room must hear of (connected in CirclesConfig.ready)."""

from allauth.account.signals import password_changed, password_reset, password_set
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from circles.services.room import room_sign_in_ended


@receiver(user_logged_out, dispatch_uid="circles.room.logged_out")
def close_sockets_on_logout(sender, request, user, **kwargs):
    if user is not None:
        room_sign_in_ended(user_id=user.pk)


@receiver(password_changed, dispatch_uid="circles.room.password_changed")
@receiver(password_set, dispatch_uid="circles.room.password_set")
@receiver(password_reset, dispatch_uid="circles.room.password_reset")
def close_sockets_on_password_change(sender, request, user, **kwargs):
    room_sign_in_ended(user_id=user.pk)
