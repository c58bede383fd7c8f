"""The service over real HTTP: a real ``audio-cppn serve`` process on a free loopback port (one per module)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.service import (EXE, Service, all_whole, frame_files, identities, p99, render_request, wait_gone,
                              write_song)

LONG_SIZE = {"width": 96, "height": 54}  # renders long enough to act on mid-way (a few seconds)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def service(work):
    library = work / "library"
    library.mkdir()
    server = Service(work / "data", styles_dir=library).start()
    yield server
    assert server.stop() == 0
    assert not (work / "data" / "server.json").exists()


@pytest.fixture(scope="module")
def song(work) -> Path:
    return write_song(work / "song.wav", 2.0)


@pytest.fixture(scope="module")
def long_song(work) -> Path:
    return write_song(work / "long.wav", 12.0)


# --- the door ---

def test_health_needs_no_token_and_describes_the_service(service):
    status, health = service.request("GET", "/health", token=None)
    assert status == 200
    assert health["status"] == "ok" and health["pid"] == service.proc.pid
    assert health["version"] and health["uptime_s"] > 0 and health["queue_length"] >= 0
    assert health["clip_weights"][0]["model"] == "ViT-B-32"
    assert isinstance(health["clip_weights"][0]["available"], bool)


@pytest.mark.parametrize("method, path", [("GET", "/jobs"), ("GET", "/styles"), ("GET", "/openapi.json"),
                                          ("POST", "/release"), ("GET", "/jobs/1")])
def test_every_other_endpoint_needs_the_token(service, method, path):
    assert service.request(method, path, token=None)[0] == 401
    status, body = service.request(method, path, token="wrong-" + service.token)
    assert status == 401 and "token" in body["error"]["message"]
    assert service.request(method, path, token=service.token[:-1])[0] == 401
    assert service.request(method, path, headers={"Authorization": service.token})[0] == 401  # no "Bearer"


def test_a_foreign_host_or_origin_is_refused_and_no_cors_header_is_sent(service):
    for host in ("evil.example:%d" % service.port, "127.0.0.1:1", "127.0.0.1", "10.0.0.1:%d" % service.port):
        status, body = service.request("GET", "/health", token=None, headers={"Host": host})
        assert status == 400 and "Host" in body["error"]["message"], host
    for origin in ("http://evil.example", "null", "https://127.0.0.1.evil.example"):
        status, body = service.request("GET", "/jobs", headers={"Origin": origin})
        assert status == 403 and "not allowed" in body["error"]["message"], origin
    conn_headers = _headers(service, "/jobs", {"Origin": f"http://localhost:{service.port}"})
    assert conn_headers["status"] == 200
    assert not any(k.lower().startswith("access-control-") for k in conn_headers)


def _headers(service, path, extra) -> dict:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {service.token}", **extra})
    response = conn.getresponse()
    response.read()
    conn.close()
    return {"status": response.status, **dict(response.getheaders())}


def test_a_body_over_one_megabyte_is_refused(service, song, work):
    big = json.dumps(render_request(song, work / "big", prefix="x" * (1 << 20))).encode()
    status, body = service.request("POST", "/jobs", raw=big)
    assert status == 413 and "limited" in body["error"]["message"]
    assert service.request("GET", "/jobs")[1]["jobs"] == [] or all(
        j["request"].get("output") != str(work / "big") for j in service.request("GET", "/jobs")[1]["jobs"])


def test_the_server_file_the_token_file_and_one_server_per_data_dir(service, work):
    info = service.server_file()
    assert info == {"url": service.url, "port": service.port, "pid": service.proc.pid,
                    "version": service.health()["version"], "token_file": str(work / "data" / "token")}
    assert stat.S_IMODE((work / "data" / "token").stat().st_mode) == 0o600
    second = subprocess.run([str(EXE), "serve", "--port", "0", "--data-dir", str(work / "data")],
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert service.url in second.stderr and f"pid {service.proc.pid}" in second.stderr
    assert service.server_file() == info  # the running server's file is untouched


# --- jobs ---

def test_a_render_job_end_to_end_with_progress(service, song, work):
    output = work / "render"
    job = service.submit(render_request(song, output))
    assert job["state"] in ("queued", "running") and job["request"]["width"] == 64
    seen = []
    done = service.wait(job["id"], until=lambda j: seen.append(j) or j["state"] in ("done", "failed"))
    assert done["state"] == "done", done["error"]
    renders = [j["progress"] for j in seen if j["progress"] and j["progress"]["stage"] == "render"]
    assert renders, "render progress was never seen"
    assert [p["done"] for p in renders] == sorted(p["done"] for p in renders)
    assert done["progress"] == {"stage": "render", "done": 60, "total": 60, "fraction": 1.0,
                                "message": "frame 60", "info": done["progress"]["info"]}
    result = done["result"]
    assert (result["first_frame"], result["last_frame"], result["frames_rendered"]) == (1, 60, 60)
    assert result["manifest"] == str(output / "manifest.json") and result["style"] == "aurora"
    assert len(frame_files(output)) == 60 and all_whole(output, 64, 36)
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["ranges"] == [[1, 60]] and manifest["size"] == [64, 36]
    assert done["started"] >= done["created"] and done["finished"] >= done["started"]
    log = (work / "data" / "logs" / "service.log").read_text()
    for event in ("queued", "started", "done"):
        assert f"job {job['id']} {event}" in log
    assert service.token not in log


def test_a_features_job_writes_what_the_library_computes(service, song, work):
    from backend.audio.features import AudioConfig, analyze
    from backend.audio.files import load_features

    job = service.wait(service.submit({"kind": "features", "audio": str(song), "output": str(work / "f.npz"),
                                       "fps": "24", "plot": str(work / "f.png")})["id"])
    assert job["state"] == "done", job["error"]
    assert job["result"]["n_frames"] == 48 and job["result"]["output"] == str(work / "f.npz")
    assert (work / "f.png").read_bytes()[:4] == b"\x89PNG"
    served, direct = load_features(work / "f.npz"), analyze(song, config=AudioConfig(fps=24))
    assert served.config == direct.config and served.names == direct.names
    assert np.array_equal(served.values, direct.values)  # one piece of code, same machine: same numbers
    assert np.array_equal(served.beat_times, direct.beat_times)


def test_beat_hints_reach_the_analysis_as_from_the_command_line(service, song, work):
    from backend.audio.features import AudioConfig, analyze
    from backend.audio.files import load_features

    (work / "beats.txt").write_text("# from a DJ tool\n0.25\n0.75 beat\n1.25\n1.75\n")
    job = service.wait(service.submit({"kind": "features", "audio": str(song), "output": str(work / "hinted.npz"),
                                       "beats_file": str(work / "beats.txt"), "tempo_range": [70, 140]})["id"])
    assert job["state"] == "done", job["error"]
    served = load_features(work / "hinted.npz")
    direct = analyze(song, config=AudioConfig(beat_times=(0.25, 0.75, 1.25, 1.75), tempo_range=(70.0, 140.0)))
    assert served.config == direct.config and np.array_equal(served.values, direct.values)
    assert np.allclose(served.beat_times, [0.25, 0.75, 1.25, 1.75])


def test_a_train_job_with_the_tiny_clip_adds_a_style(service, tiny_clip_dir, features_file, work):
    job = service.submit({"kind": "train", "prompt": "ink in water", "name": "served", "steps": 4,
                          "resolutions": [32], "hidden": 16, "depth": 3, "cutouts": 2, "eval_every": 2,
                          "clip_model": f"local-dir:{tiny_clip_dir}", "features": str(features_file)})
    done = service.wait(job["id"])
    assert done["state"] == "done", done["error"]
    assert done["result"]["steps"] == 4 and Path(done["result"]["style_path"]).is_file()
    status, style = service.request("GET", "/styles/served")
    assert status == 200 and style["kind"] == "trained" and style["prompt"] == "ink in water"
    assert style["similarity"] == pytest.approx(done["result"]["best_similarity"])
    assert "served" in [s["name"] for s in service.request("GET", "/styles")[1]["styles"]]
    status, png = service.request("GET", style["preview"])
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    # the same name again is a conflict, before anything is queued
    status, body = service.request("POST", "/jobs", {**job["request"], "priority": 0})
    assert status == 409 and "already exists" in body["error"]["message"]


def test_a_cancelled_training_keeps_its_checkpoint_and_a_resume_job_finishes_it(service, tiny_clip_dir,
                                                                                features_file):
    request = {"kind": "train", "prompt": "gold leaf", "name": "resumed", "steps": 30, "resolutions": [32],
               "hidden": 16, "depth": 3, "cutouts": 2, "eval_every": 10, "checkpoint_every": 10,
               "clip_model": f"local-dir:{tiny_clip_dir}", "features": str(features_file)}
    job = service.submit(request)
    service.wait(job["id"], until=lambda j: (j["progress"] or {}).get("stage") == "train"
                 and j["progress"]["done"] >= 2 or j["state"] not in ("queued", "running"))
    service.request("POST", f"/jobs/{job['id']}/cancel")
    cancelled = service.wait(job["id"])
    assert cancelled["state"] == "cancelled", cancelled
    checkpoint = service.styles_dir / ".checkpoints" / "resumed.ckpt.safetensors"
    assert checkpoint.is_file() and service.request("GET", "/styles/resumed")[0] == 404
    status, body = service.request("POST", "/jobs", request)  # a fresh run would clobber the checkpoint
    assert status == 409 and "--resume" in body["error"]["fix"]
    resumed = service.wait(service.submit({"kind": "train", "name": "resumed", "resume": True})["id"])
    assert resumed["state"] == "done", resumed["error"]
    assert resumed["result"]["steps"] == 30 and not checkpoint.exists()
    assert service.request("GET", "/styles/resumed")[1]["prompt"] == "gold leaf"


def test_cancel_mid_render_keeps_the_finished_frames_whole(service, long_song, work):
    output = work / "cancelled"
    request = render_request(long_song, output, **LONG_SIZE)
    job = service.submit(request)
    service.wait(job["id"], until=lambda j: (j["progress"] or {}).get("stage") == "render"
                 and j["progress"]["done"] >= 20)
    status, answer = service.request("POST", f"/jobs/{job['id']}/cancel")
    assert status == 200 and answer["cancel_requested"]
    cancelled = service.wait(job["id"])
    assert cancelled["state"] == "cancelled" and cancelled["error"]["kind"] == "Cancelled"
    kept = identities(output)
    assert 20 <= len(kept) < 360 and len(kept) <= cancelled["progress"]["done"]
    assert all_whole(output, 96, 54)
    # the same request again renders only what is missing, and leaves the kept frames alone
    again = service.wait(service.submit(request)["id"])
    assert again["state"] == "done", again["error"]
    assert again["result"]["frames_skipped"] == len(kept)
    assert again["result"]["frames_rendered"] == 360 - len(kept)
    after = identities(output)
    assert len(after) == 360 and all(after[name] == ident for name, ident in kept.items())


def test_a_queued_job_is_cancelled_at_once_and_finished_jobs_can_be_forgotten(service, song, work):
    blocker = service.submit(render_request(song, work / "blocker", **LONG_SIZE))
    queued = service.submit(render_request(song, work / "never"))
    assert service.request("POST", f"/jobs/{queued['id']}/cancel")[1]["state"] == "cancelled"
    assert service.request("DELETE", f"/jobs/{blocker['id']}")[0] == 409  # not finished yet
    assert service.wait(blocker["id"])["state"] == "done"
    assert frame_files(work / "never") == []  # the check before queueing made the folder, as the CLI does
    assert service.request("DELETE", f"/jobs/{queued['id']}") == (200, {"deleted": queued["id"]})
    assert service.request("GET", f"/jobs/{queued['id']}")[0] == 404
    assert (work / "blocker" / "manifest.json").exists()  # forgetting never deletes files


def test_a_second_job_on_the_output_a_running_job_renders_names_that_job(service, long_song, work):
    """The running job also holds the output's lock; the refusal names the job, not the compute process."""
    output = work / "busy"
    first = service.submit(render_request(long_song, output, **LONG_SIZE))
    service.wait(first["id"], until=lambda job: (job["progress"] or {}).get("stage") == "render")
    status, body = service.request("POST", "/jobs", render_request(long_song, output))
    assert status == 409 and body["error"]["message"].startswith(f"job {first['id']} (running) already writes")
    service.request("POST", f"/jobs/{first['id']}/cancel")
    assert service.wait(first["id"])["state"] == "cancelled"


def test_two_jobs_on_one_output_conflict_and_so_does_a_command_line_render(service, long_song, work):
    output = work / "shared"
    first = service.submit(render_request(long_song, output, **LONG_SIZE))
    status, body = service.request("POST", "/jobs", render_request(long_song, output))
    assert status == 409 and f"job {first['id']}" in body["error"]["message"]
    status, body = service.request("POST", "/jobs", render_request(long_song, work / "other", video=str(output)))
    assert status == 400  # not an .mp4
    service.request("POST", f"/jobs/{first['id']}/cancel")
    assert service.wait(first["id"])["state"] == "cancelled"
    # a folder a command-line render holds
    locked = work / "locked"
    locked.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from backend.render.folder_lock import OutputLock\n"
                               "with OutputLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
                               str(locked)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        status, body = service.request("POST", "/jobs", render_request(long_song, locked))
        assert status == 409 and f"process {holder.pid}" in body["error"]["message"]
    finally:
        holder.kill()
        holder.wait()
    assert service.request("GET", "/jobs?state=queued")[1]["jobs"] == []


def _bad_requests(song: Path, work: Path) -> list[tuple[dict, int, str]]:
    render = render_request(song, work / "bad")
    (work / "bad_beats.txt").write_text("0.5\n1.0\nsoon\n")
    return [
        ({**render, "beats_file": str(work / "bad_beats.txt")}, 400, "bad_beats.txt line 3: expected a time"),
        ({**render, "beats_file": "beats.txt"}, 400, "beats file must be an absolute path"),
        ({**render, "tempo_range": "fast"}, 400, "tempo range must look like 70-140"),
        ({**render, "bpm": -5}, 400, "bpm"),
        ({**render, "fps": "fast"}, 400, "fps must be a number like 30, 29.97 or 30000/1001, got 'fast'"),
        ({**render, "fps": 0}, 400, "fps must be > 0"),
        ({**render, "width": 0}, 400, "width"),
        ({**render, "size": "huge"}, 400, "size must be WIDTHxHEIGHT"),
        ({**render, "format": "gif"}, 400, "gif"),
        ({**render, "frames": "9-1"}, 400, "frame range must run forwards"),
        ({**render, "frames": [1, 100000]}, 400, "outside the track"),
        ({**render, "gains": {"kazoo": 2}}, 400, "unknown feature in gains"),
        ({**render, "audio": str(work / "missing.wav")}, 404, "audio file not found"),
        ({**render, "audio": "song.wav"}, 400, "audio must be an absolute path"),
        ({**render, "output": "out/frames"}, 400, "output must be an absolute path"),
        ({**render, "style": "no-such-style"}, 404, "no style named 'no-such-style'"),
        ({**render, "device": "cuda"}, 400, "cuda"),
        ({**render, "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
        ({**render, "priority": 10**30}, 422, "priority"),
        ({**render, "kind": "sing"}, 422, "kind"),
        ({key: v for key, v in render.items() if key != "output"}, 422, "output: Field required"),
        ({"kind": "features", "audio": str(song), "output": str(work / "f.txt")}, 400, "must end in .npz"),
        ({"kind": "train", "prompt": "", "name": "x"}, 400, "prompt"),
        ({"kind": "train", "prompt": "ink", "name": "../x"}, 400, "style name '../x' must be"),
        ({"kind": "train", "prompt": "ink", "name": "x", "steps": 0}, 400, "steps must be an integer >= 1"),
        ({"kind": "train", "prompt": "ink", "name": "x", "resume": True}, 404, "no interrupted run of 'x'"),
        ({"kind": "train", "prompt": "ink", "name": "x"}, 404, "not in the local cache"),
    ]


def test_every_bad_request_gets_its_4xx_with_a_message_and_queues_nothing(service, song, work):
    before = service.request("GET", "/jobs")[1]["jobs"]
    health = service.health()
    for body, expected, words in _bad_requests(song, work):
        if body.get("device") == "cuda" and health["device"] == "cuda":
            continue  # a GPU machine accepts it
        if "not in the local cache" in words and health["clip_weights"][0]["available"]:
            continue  # this machine has the default CLIP weights
        status, answer = service.request("POST", "/jobs", body)
        assert status == expected, (body, answer)
        assert words in answer["error"]["message"], (words, answer)
    assert service.request("POST", "/jobs", raw=b"{not json")[0] == 422
    assert service.request("GET", "/jobs/0")[0] == 422
    assert service.request("GET", "/jobs/99999")[0] == 404
    assert service.request("GET", "/jobs?state=sleeping")[0] == 422
    assert service.request("GET", "/styles/no-such-style")[0] == 404
    assert service.request("GET", "/styles/..%2Fetc")[0] in (400, 404)
    assert service.request("GET", "/jobs")[1]["jobs"] == before
    assert not (work / "bad").exists()


def test_a_bad_request_gets_the_message_the_cli_prints(service, song, work):
    cases = [(["--fps", "fast"], {"fps": "fast"}), (["--style", "no-such-style"], {"style": "no-such-style"})]
    for args, fields in cases:
        cli = subprocess.run([str(EXE), "render", str(song), "-o", str(work / "cli-bad"), *args,
                              "--styles-dir", str(service.styles_dir)],
                             capture_output=True, text=True, timeout=300)
        assert cli.returncode == 2
        status, answer = service.request("POST", "/jobs", render_request(song, work / "cli-bad", **fields))
        error = answer["error"]
        printed = f"error: {error['message']}" + (f" (fix: {error['fix']})" if error["fix"] else "")
        assert cli.stderr.strip() == printed


def test_fifty_queued_jobs_run_in_order_while_twenty_clients_poll(service, long_song, song, work):
    blocker = service.submit(render_request(long_song, work / "poll", **LONG_SIZE))
    jobs = [service.submit({"kind": "features", "audio": str(song), "output": str(work / f"q{i:02d}.json")})
            for i in range(50)]
    urgent = service.submit({"kind": "features", "audio": str(song), "output": str(work / "urgent.json"),
                             "priority": 5})
    latencies: list[float] = []
    errors: list[str] = []

    def poll():
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
        for _ in range(100):
            started = time.perf_counter()
            conn.request("GET", f"/jobs/{blocker['id']}", headers={"Authorization": f"Bearer {service.token}"})
            response = conn.getresponse()
            body = response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200 or json.loads(body)["id"] != blocker["id"]:
                errors.append(f"{response.status} {body[:200]!r}")
        conn.close()

    assert service.job(blocker["id"])["state"] in ("queued", "running")
    threads = [threading.Thread(target=poll) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(latencies) == 2000
    print(f"\n20 threads x 100 polls during a render: p50 {np.median(latencies) * 1000:.1f} ms, "
          f"p99 {p99(latencies) * 1000:.1f} ms")
    finished = [service.wait(j["id"]) for j in [blocker, *jobs, urgent]]
    assert all(j["state"] == "done" for j in finished), [j["error"] for j in finished if j["state"] != "done"]
    starts = {j["id"]: j["started"] for j in finished}
    order = sorted(starts, key=starts.get)
    assert order[0] == blocker["id"]
    assert order[1] == urgent["id"]  # queued last, but a higher priority
    assert order[2:] == [j["id"] for j in jobs]


def test_a_crash_of_the_compute_process_fails_the_job_and_the_server_goes_on(service, long_song, song, work):
    job = service.submit(render_request(long_song, work / "crash", **LONG_SIZE))
    service.wait(job["id"], until=lambda j: (j["progress"] or {}).get("stage") == "render")
    compute_pid = service.health()["compute_pid"]
    os.kill(compute_pid, 9)  # what the kernel's out-of-memory killer does
    failed = service.wait(job["id"])
    assert failed["state"] == "failed" and failed["error"]["kind"] == "ComputeCrashed"
    assert "SIGKILL" in failed["error"]["message"]
    wait_gone(compute_pid)
    assert service.health()["status"] == "ok"
    after = service.wait(service.submit(render_request(song, work / "after-crash"))["id"])
    assert after["state"] == "done", after["error"]
    assert service.health()["compute_pid"] not in (None, compute_pid)


def test_release_stops_the_compute_process_and_the_next_job_starts_a_new_one(service, song, work):
    before = service.health()["compute_pid"]
    assert service.request("POST", "/release") == (200, {"released": True})
    health = service.health()
    assert health["compute"] == "released" and health["compute_pid"] is None
    if before is not None:
        wait_gone(before)
    job = service.wait(service.submit(render_request(song, work / "after-release"))["id"])
    assert job["state"] == "done", job["error"]
    assert service.health()["compute"] == "ready"


def test_a_fuzz_of_the_api_from_its_own_schema_finds_no_5xx_and_no_schema_violation(service):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                   status_code_conformance)

    auth = {"Authorization": f"Bearer {service.token}"}
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json", headers=auth)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]

    @settings(max_examples=250, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(generation_mode=modes[0]) | schema.as_strategy(generation_mode=modes[1]))
    def fuzz(case):
        case.call_and_validate(base_url=service.url, headers=auth, checks=checks, timeout=60)

    fuzz()
    assert service.health()["status"] == "ok"


@pytest.mark.parametrize("args, words", [
    (["--host", "0.0.0.0"], "would expose the service to the network"),
    (["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
    (["--port", "70000"], "--port must be 0..65535"),
    (["--token-file", "{short}"], "must hold one token of 16+ characters"),
])
def test_serve_refuses_bad_options_in_one_line(tmp_path, args, words):
    (tmp_path / "short").write_text("abc\n")
    args = [a.format(short=tmp_path / "short") for a in args]
    run = subprocess.run([str(EXE), "serve", "--data-dir", str(tmp_path / "data"), *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and words in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "data" / "server.json").exists()
