"""Run daphne with an access log that never prints secrets from URLs.

`python -m config.serve [daphne's own options] config.asgi:application`
daphne writes its access log itself, outside Python's logging, with full paths
and query strings: invite tokens and confirmation keys would land there.
"""

from __future__ import annotations

import daphne.cli
from daphne.access import AccessLogGenerator

from config.redaction import redact


class RedactedAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None):
        super().write_entry(host, date, redact(request), status, length, ident, user)


def main() -> None:
    daphne.cli.AccessLogGenerator = RedactedAccessLog
    daphne.cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
