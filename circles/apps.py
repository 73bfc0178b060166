from django.apps import AppConfig


class CirclesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "circles"
    verbose_name = "Circles"

    def ready(self) -> None:
        from circles import signals  # noqa: F401 - connects the receivers
