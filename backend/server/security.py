"""The door: every HTTP request passes here before any endpoint sees it.

* ``Host`` must name a loopback address with the server's port: a web page that rebinds its
  DNS name to 127.0.0.1 still sends its own name, and is refused.
* An ``Origin`` that is not loopback is refused; no CORS header is ever sent, so a browser
  never lets a foreign page read an answer.
* Every path but ``/health`` needs ``Authorization: Bearer <token>``, compared in constant time.
* Bodies over ``max_body`` bytes are refused (413) before they are parsed.

A pure ASGI middleware: cheap enough to keep polling fast.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
OPEN_PATHS = ("/health",)
MAX_BODY = 1 << 20  # 1 MiB: a job request is a few hundred bytes


def host_names(host_header: str) -> tuple[str, int | None]:
    """``"127.0.0.1:8765"`` -> ("127.0.0.1", 8765); ``"[::1]:80"`` -> ("::1", 80)."""
    try:
        parts = urlsplit("//" + host_header)
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", None


class Guard:
    def __init__(self, app, *, token: str, port: int, extra_hosts: tuple[str, ...] = (), max_body: int = MAX_BODY):
        self.app = app
        self.token = token.encode()
        self.port = port
        self.hosts = set(LOOPBACK_NAMES) | {h.lower() for h in extra_hosts}
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {}
        for key, value in scope["headers"]:
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        name, port = host_names(headers.get("host", ""))
        if name not in self.hosts or port != self.port:
            return await _refuse(send, 400, "BadHost", "the Host header must be 127.0.0.1, localhost or [::1] "
                                                        f"with port {self.port}")
        origin = headers.get("origin")
        if origin is not None and not _loopback_origin(origin, self.hosts):
            return await _refuse(send, 403, "ForeignOrigin", f"requests from {origin[:100]} are not allowed")
        if scope["path"] not in OPEN_PATHS and not self._authorized(headers.get("authorization", "")):
            return await _refuse(send, 401, "Unauthorized",
                                 "missing or wrong token: send 'Authorization: Bearer <token>' "
                                 "(the token is in the server's token file)", www_authenticate=True)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _refuse(send, 413, "TooLarge", f"request bodies are limited to {self.max_body} bytes")
        return await self.app(scope, self._limited(receive, send), send)

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token)

    def _limited(self, receive, send):
        """A chunked body without a length is counted as it arrives."""
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge()
            return message

        return limited


class BodyTooLarge(Exception):
    """Raised into the app's body read; the app turns it into a 413."""


def _loopback_origin(origin: str, hosts: set[str]) -> bool:
    try:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and (parts.hostname or "").lower() in hosts
    except ValueError:
        return False


async def _refuse(send, status: int, kind: str, message: str, *, www_authenticate: bool = False) -> None:
    body = json.dumps({"error": {"kind": kind, "message": message, "fix": None}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if www_authenticate:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
