from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.pseudonyms import MAX_LENGTH, normalise_display_name, validate_display_name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, display_name: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(
            email=self.normalize_email(email).lower(),
            display_name=normalise_display_name(display_name),
            **extra,
        )
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, display_name: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, display_name, password, **extra)

    def create_superuser(self, email: str, display_name: str, password: str | None = None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, display_name, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person, known to others only by their display name (a pseudonym)."""

    email = models.EmailField(_("email address"), unique=True)
    display_name = models.CharField(
        _("display name"),
        max_length=MAX_LENGTH,
        validators=[validate_display_name],
        help_text=_("The name other members see. Please don't use your real name."),
    )
    is_staff = models.BooleanField(_("staff status"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)
    age_confirmed_at = models.DateTimeField(
        _("confirmed 16 or older at"), null=True, blank=True, editable=False
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["display_name"]

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.UniqueConstraint(
                Lower("display_name"),
                name="accounts_user_display_name_unique_ci",
                violation_error_message=_("Someone already uses that display name."),
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args, **kwargs) -> None:
        self.display_name = normalise_display_name(self.display_name)
        if self.email:
            self.email = self.email.strip().lower()
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("accounts:profile")

    def get_short_name(self) -> str:
        return self.display_name

    def get_full_name(self) -> str:
        return self.display_name
