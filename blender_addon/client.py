"""HTTP client of the Audio CPPN service (plain Python: urllib, no bpy), with typed errors.

Every call has a short timeout, so a lost backend is an exception within seconds, never a hang.
Errors carry what to show the user: ``message`` and, where the service gives one, ``fix``.
``find_server(data_dir)`` reads the ``server.json`` a running ``audio-cppn serve`` writes.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SERVER_FILE = "server.json"
DEFAULT_TIMEOUT = 5.0  # seconds; status calls take well under 100 ms, a submit checks files (longer when busy)


class ClientError(Exception):
    """Anything that stops a call; ``message`` says what, ``fix`` what the user can do."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class BackendDown(ClientError):
    """Nothing answers at the URL (not started, exited, or killed)."""


class Unauthorized(ClientError):
    """The service refused the token."""


class RequestRejected(ClientError):
    """The service understood the request and refused it (4xx): bad settings, unknown style, busy output."""

    def __init__(self, message: str, fix: str = "", status: int = 400, kind: str = ""):
        super().__init__(message, fix)
        self.status = status
        self.kind = kind


class NotFound(RequestRejected):
    """No such job or style (404)."""


class ServerFailed(ClientError):
    """The service answered 5xx or something that is not its JSON."""


@dataclass(frozen=True)
class ServerInfo:
    """Where a running service listens, from its ``server.json``."""

    url: str
    token: str
    pid: int | None
    version: str


def default_data_dir() -> Path:
    """The service's default data folder (the XDG rule on Linux; the platform's user data folder elsewhere)."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "audio-cppn"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "audio-cppn"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "audio-cppn"


def read_server_file(data_dir: str | Path) -> ServerInfo | None:
    """The server described by ``DATA_DIR/server.json`` and its token, or None when there is none yet."""
    path = Path(data_dir).expanduser() / SERVER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BackendDown(f"{path} is not readable ({exc})", "start the backend again") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise BackendDown(f"{path} has no server url", "start the backend again")
    token = data.get("token") if isinstance(data.get("token"), str) else ""
    token_file = data.get("token_file")
    if not token and isinstance(token_file, str):
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise Unauthorized(f"cannot read the token file {token_file} ({exc.strerror})",
                               "check the data folder's permissions") from None
    pid = data.get("pid")
    return ServerInfo(url=data["url"].rstrip("/"), token=token, pid=pid if isinstance(pid, int) else None,
                      version=str(data.get("version") or ""))


class Client:
    """One service at ``url``; methods return the service's JSON as dicts and lists."""

    def __init__(self, url: str, token: str = "", *, timeout: float = DEFAULT_TIMEOUT):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # -- the contract ------------------------------------------------------------------------------
    def health(self) -> dict:
        return self._call("GET", "/health")

    def styles(self) -> list[dict]:
        data = self._call("GET", "/styles")
        return data.get("styles", []) if isinstance(data, dict) else data

    def style_preview(self, name: str) -> bytes:
        return self._call("GET", f"/styles/{urllib.parse.quote(name, safe='')}/preview.png", raw=True)

    def submit(self, body: dict) -> dict:
        return self._call("POST", "/jobs", body)

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"/jobs/{urllib.parse.quote(str(job_id), safe='')}")

    def jobs(self, state: str | None = None) -> list[dict]:
        data = self._call("GET", "/jobs" + (f"?state={urllib.parse.quote(state)}" if state else ""))
        return data.get("jobs", []) if isinstance(data, dict) else data

    def cancel(self, job_id: str) -> dict:
        return self._call("POST", f"/jobs/{urllib.parse.quote(str(job_id), safe='')}/cancel")

    def forget(self, job_id: str) -> dict:
        return self._call("DELETE", f"/jobs/{urllib.parse.quote(str(job_id), safe='')}")

    def release(self) -> dict:
        return self._call("POST", "/release")

    # -- transport ---------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict | None = None, *, raw: bool = False):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
            reason = getattr(exc, "reason", exc)
            raise BackendDown(f"the Audio CPPN backend at {self.url} does not answer ({reason})",
                              "start the backend") from None
        if raw:
            return payload
        try:
            return json.loads(payload) if payload else {}
        except ValueError:
            raise ServerFailed(f"{self.url}{path} answered something that is not JSON; is another program "
                               "on that port?", "check the backend URL") from None


def _http_error(exc: urllib.error.HTTPError) -> ClientError:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    message, fix, kind = _error_fields(body)
    message = message or f"HTTP {exc.code} {exc.reason}"
    if exc.code == 401 or exc.code == 403:
        return Unauthorized(message, fix or "check the token in the add-on's preferences")
    if exc.code == 404:
        return NotFound(message, fix, status=404, kind=kind)
    if 400 <= exc.code < 500:
        return RequestRejected(message, fix, status=exc.code, kind=kind)
    return ServerFailed(f"the backend failed: {message}", fix or "see the backend's log in its data folder")


def _error_fields(body) -> tuple[str, str, str]:
    """(message, fix, kind) from the service's error body: ``{"error": {...}}`` or FastAPI's ``{"detail": ...}``."""
    if not isinstance(body, dict):
        return "", "", ""
    error = body.get("error", body.get("detail"))
    if isinstance(error, dict):
        return str(error.get("message") or ""), str(error.get("fix") or ""), str(error.get("kind") or "")
    if isinstance(error, list):  # FastAPI validation: a list of {loc, msg}
        parts = [f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in error
                 if isinstance(e, dict)]
        return "; ".join(parts), "", "InvalidInput"
    if isinstance(error, str):
        return error, str(body.get("fix") or ""), str(body.get("kind") or "")
    return str(body.get("message") or ""), str(body.get("fix") or ""), str(body.get("kind") or "")
