"""Keep secrets out of logs: tokens in paths, and every query string.

Used by Python logging (a filter on every handler) and by daphne's access log
(config/serve.py). Message text never reaches a log in the first place: nothing
logs frames or events.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# Paths whose next segment is a secret: invite links, email confirmation, password reset.
SECRET_PATHS = re.compile(
    r"(/circles/invite/|/accounts/confirm-email/|/accounts/password/reset/key/)[^\s/?\"']+"
)
QUERY = re.compile(r"\?[^\s\"']*")


def redact(text: str) -> str:
    text = SECRET_PATHS.sub(lambda match: match.group(1) + REDACTED, text)
    return QUERY.sub("?" + REDACTED, text)


class RedactSecrets(logging.Filter):
    """Rewrite a record's message with secrets redacted (never drops the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
