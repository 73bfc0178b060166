"""Settings of the baseline chat: a channel layer and nothing else.

No database, no auth, no sessions, no middleware: whatever the baseline costs is
what Channels, daphne and Redis cost. REDIS_CHANNEL_LAYER picks the layer
(core: RedisChannelLayer, pubsub: RedisPubSubChannelLayer), as in Peer Circles.
"""

from __future__ import annotations

import os

REDIS_LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

# Never used for anything secret: there is nothing signed here.
SECRET_KEY = "bench-baseline-has-no-secrets-to-sign-0123456789"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
DATABASES: dict = {}
USE_TZ = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": REDIS_LAYERS[os.environ.get("REDIS_CHANNEL_LAYER", "core")],
        "CONFIG": {
            # redis-py 8 reads with a 5 s timeout, the same as the layer's blocking
            # read: without this, idle consumers die every few seconds.
            "hosts": [
                {
                    "address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
                    "socket_timeout": None,
                }
            ],
        },
    }
}
