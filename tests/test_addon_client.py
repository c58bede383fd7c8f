"""The add-on's bpy-free side against a real ``audio-cppn serve``: process, client, monitor, errors.

The add-on starts the service as its own child (``backend_process``), finds it through
``server.json``, talks to it with ``client`` (typed errors), follows it with ``monitor`` (a lost
backend becomes a status line), and stops it, also when the Python that started it just exits.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from blender_addon.backend_process import BackendProcess, serve_command, stop_all
from blender_addon.client import (BackendDown, Client, NotFound, RequestRejected, Unauthorized, read_server_file)
from blender_addon.job_request import parse_job
from blender_addon.monitor import Monitor, wait_for_job
from tests.helpers.signals import pulse_train, write_audio

ROOT = Path(__file__).resolve().parent.parent
SERVE = Path(sys.executable).with_name("audio-cppn")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    data = tmp_path_factory.mktemp("addon-service")
    process = BackendProcess(serve_command(str(SERVE), data / "data"), data / "data")
    info = process.start(timeout=180)
    yield process, info, data
    process.stop()


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    y, _ = pulse_train(120, sr=22050, duration=1.0)
    return write_audio(tmp_path_factory.mktemp("audio") / "beat.wav", y, 22050)


def test_the_child_announces_itself_and_answers(backend):
    process, info, data = backend
    assert info.pid == process.process.pid and info.url.startswith("http://127.0.0.1:")
    assert info.token and info.token == (data / "data" / "token").read_text().strip()
    assert process.running()
    health = Client(info.url).health()  # no token needed
    assert health["status"] == "ok" and health["version"] == info.version


def test_client_calls_and_typed_errors(backend, audio, tmp_path):
    _, info, _ = backend
    client = Client(info.url, info.token, timeout=60)  # the service's first /styles imports its library code
    names = [s["name"] for s in client.styles()]
    assert "aurora" in names
    assert client.style_preview("aurora")[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(Unauthorized):
        Client(info.url, "wrong").styles()
    with pytest.raises(NotFound):
        client.job("999999")
    with pytest.raises(RequestRejected) as bad:
        client.submit({"kind": "render", "audio": "song.wav", "style": "aurora", "output": str(tmp_path / "o")})
    assert bad.value.status == 400 and "audio must be an absolute path" in bad.value.message
    assert bad.value.fix  # the service says how to fix it; the sidebar shows both
    with pytest.raises(RequestRejected, match="no_such_style"):
        client.submit({"kind": "render", "audio": str(audio), "style": "no_such_style", "output": str(tmp_path / "o")})
    assert client.jobs() == []  # nothing was queued by the bad requests


def test_a_render_job_followed_to_the_end(backend, audio, tmp_path):
    _, info, _ = backend
    client = Client(info.url, info.token, timeout=60)
    body = {"kind": "render", "audio": str(audio), "style": "aurora", "output": str(tmp_path / "frames"),
            "width": 32, "height": 18, "fps": "30000/1001", "frame_start": 10, "format": "png", "frames": [10, 20]}
    job = parse_job(client.submit(body))
    seen = []
    final = wait_for_job(client, job.id, on_progress=seen.append, interval=0.05)
    assert final.state == "done" and final.finished
    assert final.result["first_frame"] == 10 and final.result["last_frame"] == 20
    assert sorted(p.name for p in (tmp_path / "frames").glob("frame_*.png")) == \
        [f"frame_{n:06d}.png" for n in range(10, 21)]
    assert seen[-1] is final and final.progress_text().startswith("Frame 11/11")


def test_a_second_backend_on_the_same_data_dir_is_refused(backend):
    process, info, data = backend
    other = BackendProcess(serve_command(str(SERVE), data / "data"), data / "data")
    with pytest.raises(BackendDown, match=f"a backend already runs for .* \\(pid {info.pid}, {info.url}\\)"):
        other.start(timeout=30)


def test_a_missing_command_says_where_to_set_it(tmp_path):
    with pytest.raises(BackendDown, match="'no-such-audio-cppn' was not found") as error:
        serve_command("no-such-audio-cppn", tmp_path)
    assert "preferences" in error.value.fix


def test_a_python_interpreter_runs_the_backend_module(tmp_path):
    assert serve_command(sys.executable, tmp_path)[1:3] == ["-m", "backend"]
    assert serve_command(str(SERVE), tmp_path, "/lib")[1:] == ["serve", "--port", "0", "--data-dir", str(tmp_path),
                                                               "--styles-dir", "/lib"]


def test_monitor_turns_a_lost_backend_into_a_status_line(tmp_path):
    process = BackendProcess(serve_command(str(SERVE), tmp_path / "data"), tmp_path / "data")
    info = process.start(timeout=180)
    monitor = Monitor(Client(info.url, info.token), interval=0.2, preview_dir=str(tmp_path / "previews"))
    try:
        deadline = time.monotonic() + 30
        while not (monitor.snapshot().connected and monitor.snapshot().styles) and time.monotonic() < deadline:
            time.sleep(0.05)
        snapshot = monitor.snapshot()
        assert snapshot.connected and snapshot.status.startswith("Connected · ")
        assert Path(snapshot.previews["aurora"]).read_bytes()[:4] == b"\x89PNG"
        process.process.kill()  # as a crash would
        lost_at = time.monotonic()
        while monitor.snapshot().connected and time.monotonic() - lost_at < 30:
            time.sleep(0.05)
        noticed = time.monotonic() - lost_at
        print(f"lost backend noticed after {noticed:.2f} s")
        assert not monitor.snapshot().connected and monitor.snapshot().status == "Backend not running"
        assert "does not answer" in monitor.snapshot().fix
    finally:
        monitor.stop()
        process.stop()
    assert read_server_file(tmp_path / "data") is None  # the killed child's stale file is cleaned up


def test_no_orphan_when_the_python_that_started_it_exits(tmp_path):
    """What Blender quitting does: the interpreter exits, atexit stops the child."""
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "from blender_addon.backend_process import BackendProcess, serve_command\n"
              f"p = BackendProcess(serve_command({str(SERVE)!r}, {str(tmp_path)!r}), {str(tmp_path)!r})\n"
              "print(p.start(timeout=180).pid, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[-1])
    assert not Path(f"/proc/{pid}").exists()
    assert read_server_file(tmp_path) is None
    stop_all()  # nothing of ours left in this process either
