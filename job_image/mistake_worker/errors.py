"""The one exception the pipeline raises: a named reason (from the contract) plus a short detail."""

from __future__ import annotations

from mistake_api import Reason, is_retryable


class WorkerError(Exception):
    def __init__(self, reason: Reason, message: str = "") -> None:
        super().__init__(f"{reason.value}: {message}" if message else reason.value)
        self.reason = reason
        self.message = message[:900]

    @property
    def retryable(self) -> bool:
        return is_retryable(self.reason)


def appwrite_reason(code: int) -> Reason:
    """The reason for an Appwrite error code that the caller did not expect (0 = no HTTP answer)."""
    if code == 0 or code >= 500 or code in (408, 429):
        return Reason.APPWRITE_UNAVAILABLE
    if code in (401, 403):
        return Reason.APPWRITE_AUTH_FAILED
    return Reason.APPWRITE_REJECTED
