"""Read settings from the environment, failing at start with the variable's name.

Kept apart from settings.py so each rule can be tested without reloading Django.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

# Only for DEBUG on a laptop; production must set its own.
DEBUG_SECRET_KEY = "django-insecure-peer-circles-local-development-only"
DEBUG_ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_bool(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off.")


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def read_secret_key(*, debug: bool) -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")
        return key
    if debug:
        return DEBUG_SECRET_KEY
    raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off.")


def read_allowed_hosts(*, debug: bool) -> list[str]:
    hosts = env_list("ALLOWED_HOSTS")
    if "*" in hosts:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS may not contain '*': list the host names this site answers to."
        )
    if hosts:
        return hosts
    if debug:
        return list(DEBUG_ALLOWED_HOSTS)
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off.")


def read_database(*, base_dir: Path, debug: bool) -> dict:
    import dj_database_url

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        if not debug:
            raise ImproperlyConfigured("DATABASE_URL is required when DEBUG is off.")
        url = f"sqlite:///{base_dir / 'var' / 'peer-circles.sqlite3'}"
    try:
        config = dj_database_url.parse(url)
    except Exception as error:  # dj-database-url raises several kinds
        raise ImproperlyConfigured(f"DATABASE_URL could not be read: {error}") from None
    engine = config.get("ENGINE", "")
    if engine == "django.db.backends.sqlite3":
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # select_for_update does nothing on SQLite: immediate transactions take the
        # write lock at BEGIN, so two writers queue instead of both reading stale rows.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 20,
        }
    elif engine.startswith("django.db.backends.postgresql"):
        # A pool, not persistent connections: under ASGI each request may run on a
        # new thread, and the live room's database calls would otherwise open a
        # fresh connection each time.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {"pool": {"min_size": 1, "max_size": 20, "timeout": 10}}
    else:
        raise ImproperlyConfigured(
            "DATABASE_URL must be a postgres:// or sqlite:// address "
            f"(got the engine {engine or 'unknown'})."
        )
    return config


REDIS_LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def read_redis(url: str, *, secret_key: str, layer_kind: str = "pubsub") -> tuple[dict, dict]:
    """The channel layer and the cache: Redis when REDIS_URL is set, else in-process."""
    if not url:
        return (
            {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
            {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        )
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// or unix://.")
    if layer_kind not in REDIS_LAYERS:
        raise ImproperlyConfigured("REDIS_CHANNEL_LAYER must be core or pubsub.")
    config = {
        # redis-py 8 reads with a 5 s socket timeout, the same as the layer's
        # blocking read: idle consumers would die every few seconds.
        "hosts": [{"address": url, "socket_timeout": None}],
        # What members say passes through Redis encrypted, never in the clear.
        "symmetric_encryption_keys": [secret_key],
    }
    if layer_kind == "core":
        config.update({"capacity": 1500, "expiry": 30})
    layer = {"default": {"BACKEND": REDIS_LAYERS[layer_kind], "CONFIG": config}}
    cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "pc",
        }
    }
    return layer, cache


@dataclass(frozen=True)
class EmailSettings:
    backend: str
    host: str = "localhost"
    port: int = 25
    user: str = ""
    password: str = ""
    use_tls: bool = False
    use_ssl: bool = False
    file_path: str | None = None


def read_email(*, debug: bool) -> EmailSettings:
    url = os.environ.get("EMAIL_URL", "")
    if not url:
        if debug:
            return EmailSettings(backend="django.core.mail.backends.console.EmailBackend")
        # A local mail relay is the quiet, safe fallback in production.
        return EmailSettings(backend="django.core.mail.backends.smtp.EmailBackend")
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme == "console":
        if not debug:
            raise ImproperlyConfigured("EMAIL_URL=console:// is only allowed with DEBUG on.")
        return EmailSettings(backend="django.core.mail.backends.console.EmailBackend")
    if scheme == "file":
        if not parts.path:
            raise ImproperlyConfigured("EMAIL_URL=file:// needs a folder, e.g. file:///tmp/mail.")
        return EmailSettings(
            backend="django.core.mail.backends.filebased.EmailBackend",
            file_path=unquote(parts.path),
        )
    if scheme in {"smtp", "smtp+tls", "smtps"}:
        return EmailSettings(
            backend="django.core.mail.backends.smtp.EmailBackend",
            host=parts.hostname or "localhost",
            port=parts.port or (465 if scheme == "smtps" else 587 if scheme == "smtp+tls" else 25),
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            use_tls=scheme == "smtp+tls",
            use_ssl=scheme == "smtps",
        )
    raise ImproperlyConfigured(
        "EMAIL_URL must start with smtp://, smtp+tls://, smtps://, file:// or console://."
    )
