"""The turn-taking rules: pure Python, no Django, no I/O, the clock passed in.

An import rule (pyproject.toml, checked by `make test`) keeps Django out.
"""
