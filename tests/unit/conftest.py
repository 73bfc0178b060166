"""Hypothesis profiles for the policy's property tests.

"ci" (used when the CI environment variable is set) runs at least 1,000 examples,
derandomized so a CI failure reproduces; "dev" runs fewer, for a quick local loop.
"""

import os

from hypothesis import settings

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=1000,
    stateful_step_count=50,
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=100, stateful_step_count=40)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
