"""The backend's exception tree: one base, a few kinds, each carrying a message a person can act on.

The CLI prints ``error: <message>`` (plus the fix, when there is one) and exits with code 2;
a server maps the kinds to HTTP status codes; the add-on shows the message in Blender.
"""

from __future__ import annotations


class BackendError(Exception):
    """Anything the user can fix. ``fix`` says how, when we know."""

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message} ({self.fix})"


class InvalidInput(BackendError):
    """Bad arguments or unreadable input data (HTTP 400)."""


class NoSpace(InvalidInput):
    """The disk filled up while writing (HTTP 507 where a server can say so)."""


class NotFound(BackendError):
    """A file, style, model or weights that do not exist (HTTP 404)."""


class Conflict(BackendError):
    """The request disagrees with what is already on disk, e.g. a changed render setting (HTTP 409)."""


class Cancelled(BackendError):
    """A progress callback returned False."""

    exit_code = 130


class DeviceUnavailable(BackendError):
    """The requested compute device (e.g. CUDA) is not present."""
