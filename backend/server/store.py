"""The job store: every job and its state in one SQLite file (stdlib ``sqlite3``, WAL) in the data dir.

The store survives crashes: a job recorded as ``running`` or ``interrupted`` when the server
starts is queued again with ``resume`` set, so it continues from what is on disk. One connection,
guarded by a lock: each call is a short transaction, so the HTTP threads and the worker never
wait on each other for long.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")  # a job in one of these holds its targets
FINISHED = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL,          -- JSON: the validated request, as the worker runs it
    targets TEXT NOT NULL,          -- JSON list: output paths / "style:NAME" this job writes
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    progress TEXT,                  -- JSON: the last progress event
    result TEXT,                    -- JSON
    error TEXT,                     -- JSON {kind, message, fix}
    attempts INTEGER NOT NULL DEFAULT 0,  -- times the worker started it (> 1: resumed)
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, priority, id);
"""
_JSON_COLUMNS = ("request", "targets", "progress", "result", "error")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args=()) -> dict | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return _decode(row) if row is not None else None

    def _write(self, sql: str, args=()) -> int:
        with self._lock:
            cursor = self._db.execute(sql, args)
            return cursor.lastrowid if sql.lstrip().upper().startswith("INSERT") else cursor.rowcount

    def add(self, kind: str, request: dict, targets: list[str], priority: int = 0) -> dict:
        job_id = self._write("INSERT INTO jobs (kind, state, priority, request, targets, created) "
                             "VALUES (?, 'queued', ?, ?, ?, ?)",
                             (kind, int(priority), json.dumps(request), json.dumps(targets), now_iso()))
        return self.get(job_id)

    def get(self, job_id: int) -> dict | None:
        return self._one("SELECT * FROM jobs WHERE id = ?", (int(job_id),))

    def list(self, state: str | None = None, limit: int = 100) -> list[dict]:
        where, args = ("WHERE state = ?", [state]) if state else ("", [])
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs {where} ORDER BY id DESC LIMIT ?",
                                    (*args, int(limit))).fetchall()
        return [_decode(r) for r in rows]

    def count(self, states: tuple[str, ...]) -> int:
        marks = ",".join("?" * len(states))
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", states).fetchone()[0]

    def active_holding(self, targets: list[str]) -> dict | None:
        """The queued or running job that writes any of ``targets``, if one does."""
        wanted = set(targets)
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE state IN ('queued', 'running')").fetchall()
        for row in rows:
            job = _decode(row)
            if wanted & set(job["targets"]):
                return job
        return None

    def next_queued(self) -> dict | None:
        """The job to run next: highest priority first, then first come, first served."""
        return self._one("SELECT * FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id ASC LIMIT 1")

    def start(self, job_id: int) -> None:
        self._write("UPDATE jobs SET state = 'running', started = COALESCE(started, ?), attempts = attempts + 1, "
                    "error = NULL WHERE id = ?", (now_iso(), job_id))

    def set_progress(self, job_id: int, progress: dict) -> None:
        self._write("UPDATE jobs SET progress = ? WHERE id = ?", (json.dumps(progress), job_id))

    def finish(self, job_id: int, state: str, *, result: dict | None = None, error: dict | None = None,
               progress: dict | None = None) -> None:
        assert state in STATES
        ended = now_iso() if state in FINISHED else None
        self._write("UPDATE jobs SET state = ?, finished = ?, result = COALESCE(?, result), error = ?, "
                    "progress = COALESCE(?, progress) WHERE id = ?",
                    (state, ended, json.dumps(result) if result is not None else None,
                     json.dumps(error) if error is not None else None,
                     json.dumps(progress) if progress is not None else None, job_id))

    def cancel_queued(self, job_id: int) -> bool:
        """Cancel a job that has not started; False when it is no longer queued."""
        return self._write("UPDATE jobs SET state = 'cancelled', finished = ?, cancel_requested = 1 "
                           "WHERE id = ? AND state = 'queued'", (now_iso(), job_id)) == 1

    def request_cancel(self, job_id: int) -> None:
        self._write("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))

    def delete(self, job_id: int) -> bool:
        return self._write("DELETE FROM jobs WHERE id = ? AND state IN ('done', 'failed', 'cancelled')",
                           (job_id,)) == 1

    def requeue_unfinished(self) -> list[int]:
        """At start: jobs a crash, kill or shutdown left running or interrupted go back to the queue."""
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM jobs WHERE state IN ('running', 'interrupted') ORDER BY id").fetchall()]
            self._db.execute("UPDATE jobs SET state = 'queued' WHERE state IN ('running', 'interrupted')")
        return ids


def _decode(row: sqlite3.Row) -> dict:
    job = dict(row)
    for key in _JSON_COLUMNS:
        job[key] = json.loads(job[key]) if job[key] is not None else None
    job["cancel_requested"] = bool(job["cancel_requested"])
    return job
