from __future__ import annotations


class ServiceError(Exception):
    """A refusal the person can read: warm, plain, and never a stack trace."""

    def __init__(self, message: str, *, code: str = "invalid", retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after

    def __str__(self) -> str:
        return str(self.message)
