"""Test settings: the real settings module, plus what a fast, isolated test run needs.

Live servers started by tests (daphne in a child process) use this module too, so
that both sides agree on the database name and the password hasher.
"""

import os
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-checks")

from config.settings import *  # noqa: F403
from config.settings import BASE_DIR, DATABASES, REDIS_URL

# Django 5.2 uses 1,000,000 PBKDF2 rounds: a quarter of a second per sign-in.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost", "[::1]"]

# One name, known to the test run and to any live server it starts.
_engine = DATABASES["default"]["ENGINE"]
if _engine == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("TEST_SQLITE_PATH", str(BASE_DIR / "var" / "test.sqlite3"))
    }
else:
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("TEST_DATABASE_NAME", "test_peer_circles")
    }

# Tests get their own Redis database for the cache, flushed before each test, so
# allauth's rate limits and our own never leak from one test into the next.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": urlunsplit(
                urlsplit(REDIS_URL)._replace(path=f"/{os.environ.get('TEST_CACHE_REDIS_DB', '15')}")
            ),
            "KEY_PREFIX": "pc-test",
        }
    }

# allauth's limits are on by default; the tests about them switch them back on.
ACCOUNT_RATE_LIMITS = False
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
