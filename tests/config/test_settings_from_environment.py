"""Settings come from the environment; a missing or wrong one stops the start, by name."""

import os
import subprocess
import sys

import pytest

from tests.live_server import PROJECT_ROOT

GOOD_PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "s" * 50,
    "ALLOWED_HOSTS": "circles.example.org",
    "DATABASE_URL": "postgres://127.0.0.1:5432/postgres",
}


def _start(env_overrides: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DEBUG",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "DATABASE_URL",
            "REDIS_URL",
            "EMAIL_URL",
            "DEMO_MODE",
            "DJANGO_SETTINGS_MODULE",
        }
    }
    for key, value in env_overrides.items():
        if value is not None:
            env[key] = value
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_starts_with_exactly_the_three_required_settings():
    result = _start(GOOD_PRODUCTION)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"])
def test_production_refuses_to_start_without_a_required_setting(missing):
    result = _start({**GOOD_PRODUCTION, missing: None})
    assert result.returncode != 0
    assert missing in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALLOWED_HOSTS", "*"),
        ("ALLOWED_HOSTS", "circles.example.org,*"),
        ("SECRET_KEY", "short"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("REDIS_URL", "http://localhost:6379"),
        ("EMAIL_URL", "console://"),
        ("EMAIL_URL", "carrier-pigeon://coop"),
        ("DEBUG", "perhaps"),
    ],
)
def test_a_wrong_setting_stops_the_start_and_names_the_variable(name, value):
    result = _start({**GOOD_PRODUCTION, name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_alone_runs_on_the_embedded_default():
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.EMAIL_BACKEND, s.DATABASES['default']['OPTIONS']['transaction_mode'])"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "EMAIL_URL"}
    }
    env.update({"DEBUG": "1", "DJANGO_SETTINGS_MODULE": "config.settings"})
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
        "django.core.mail.backends.console.EmailBackend",
        "IMMEDIATE",
    ]


def test_redis_url_brings_the_redis_layer_without_a_read_timeout():
    from config.environment import read_redis

    layer, cache = read_redis("redis://127.0.0.1:6379/3", secret_key="k" * 40)
    assert layer["default"]["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert layer["default"]["CONFIG"]["hosts"] == [
        {"address": "redis://127.0.0.1:6379/3", "socket_timeout": None}
    ]
    assert layer["default"]["CONFIG"]["symmetric_encryption_keys"] == ["k" * 40]
    assert cache["default"]["LOCATION"] == "redis://127.0.0.1:6379/3"
    core, _cache = read_redis("redis://127.0.0.1:6379/3", secret_key="k" * 40, layer_kind="core")
    assert core["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


def test_email_url_reads_smtp_with_tls_and_credentials(monkeypatch):
    from config.environment import read_email

    monkeypatch.setenv("EMAIL_URL", "smtp+tls://mailer:p%40ss@mail.example.org:2525")
    email = read_email(debug=False)
    assert (email.host, email.port, email.user, email.password, email.use_tls) == (
        "mail.example.org",
        2525,
        "mailer",
        "p@ss",
        True,
    )
