"""A render survives the service stopping under it: Ctrl-C/SIGTERM, then SIGKILL, then it completes."""

from __future__ import annotations

import json
import signal

from service_fixtures import Service, all_whole, frame_files, identities, render_request, wait_gone, write_song

FRAMES = 240  # 8 s at 30 fps


def _rendering_beyond(frames: int):
    return lambda job: (job["progress"] or {}).get("stage") == "render" and job["progress"]["done"] >= frames \
        or job["state"] in ("done", "failed", "cancelled")


def test_a_render_resumes_after_sigterm_and_after_sigkill_and_never_writes_a_frame_twice(tmp_path):
    song = write_song(tmp_path / "song.wav", 8.0)
    output = tmp_path / "frames"
    data = tmp_path / "data"

    # 1. SIGTERM mid-render: the frame in hand is finished, the job recorded interrupted, exit code 0
    first = Service(data).start()
    job_id = first.submit(render_request(song, output, width=64, height=36))["id"]
    first.wait(job_id, until=_rendering_beyond(20))
    assert first.stop(signal.SIGTERM) == 0
    assert not (data / "server.json").exists()
    log = (data / "logs" / "service.log").read_text()
    assert f"job {job_id} interrupted" in log and "server stopped" in log
    after_term = identities(output)
    assert 20 <= len(after_term) < FRAMES and all_whole(output, 64, 36)

    # 2. the next start resumes it; SIGKILL while it renders (its compute process dies with it)
    second = Service(data).start()
    resumed = second.wait(job_id, until=_rendering_beyond(len(after_term) + 20))
    assert resumed["state"] == "running" and resumed["attempts"] == 2
    compute_pid = second.health()["compute_pid"]
    second.stop(signal.SIGKILL)
    wait_gone(compute_pid)  # nothing writes frames any more
    after_kill = identities(output)
    assert len(after_term) < len(after_kill) < FRAMES
    assert all(after_kill[name] == ident for name, ident in after_term.items())
    assert json.loads((data / "server.json").read_text())["pid"] == second.proc.pid  # stale, as after any kill

    # 3. the third start finishes it: every frame once, and whole
    third = Service(data).start()
    try:
        done = third.wait(job_id)
        assert done["state"] == "done", done["error"]
        assert done["attempts"] == 3
        assert done["result"]["frames_skipped"] == len(after_kill)
        assert done["result"]["frames_rendered"] == FRAMES - len(after_kill)
        final = identities(output)
        assert len(final) == FRAMES == len(frame_files(output)) and all_whole(output, 64, 36)
        assert all(final[name] == ident for name, ident in after_kill.items())  # none written twice
        manifest = json.loads((output / "manifest.json").read_text())
        assert manifest["ranges"] == [[1, FRAMES]]
        log = (data / "logs" / "service.log").read_text()
        assert log.count(f"job {job_id} queued again") == 2 and log.count(f"job {job_id} resumed") == 2
    finally:
        assert third.stop() == 0
