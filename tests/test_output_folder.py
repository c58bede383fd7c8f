"""OutputFolder, the resumable unit: nothing written before start(), the manifest claims only finished
ranges, a failed run takes back what it made, and check_render_request refuses without writing."""

import json

import numpy as np
import pytest

from backend.errors import Conflict, InvalidInput
from backend.model.cppn import CPPN, CPPNConfig
from backend.render.folder_lock import OutputLock, locked_by
from backend.render.job import RenderConfig, check_render_request, render
from backend.render.output_folder import OutputFolder
from backend.styles.library import save_style
from backend.writers.image import ImageFormat, write_png
from tests.helpers.hostile import assert_untouched, snapshot
from tests.helpers.signals import pulse_train, write_audio

FMT = ImageFormat(kind="png")


def manifest(seed=0):
    return {"format_version": 1, "version": "x", "fps": "30", "size": [8, 4], "frame_start": 1,
            "settings": {"seed": seed, "prefix": "frame_", "format": "png"}, "audio": {"fingerprint": "a"},
            "style": {"sha256": "s"}, "ranges": [], "created": "then", "updated": "then"}


def test_nothing_is_written_before_start_and_a_failed_run_takes_back_what_it_made(tmp_path):
    target = tmp_path / "new" / "frames"
    with pytest.raises(RuntimeError):
        with OutputFolder(target, prefix="frame_", fmt=FMT) as folder:
            assert locked_by(target) is not None
            folder.prepare(manifest())
            assert sorted(p.name for p in target.iterdir()) == [".audio-cppn.lock"]
            folder.start()
            assert (target / "manifest.json").is_file()
            raise RuntimeError("the analysis failed")
    assert not (tmp_path / "new").exists()  # the manifest that covered nothing, the lock, both folders: gone


def test_finished_ranges_are_recorded_and_other_settings_are_refused_or_replaced(tmp_path):
    colour = np.full((4, 8, 3), 0.5, np.float32)
    with OutputFolder(tmp_path, prefix="frame_", fmt=FMT) as folder:
        folder.prepare(manifest())
        folder.start()
        for n in (1, 2, 3):
            write_png(folder.frame_path(n), colour)
        folder.finish_range(1, 3)
    assert json.loads((tmp_path / "manifest.json").read_text())["ranges"] == [[1, 3]]
    assert not (tmp_path / ".audio-cppn.lock").exists()
    with OutputFolder(tmp_path, prefix="frame_", fmt=FMT) as folder:
        folder.prepare(manifest())
        assert folder.frames_done(1, 5) == {1, 2, 3}
    before = snapshot(tmp_path)
    with OutputFolder(tmp_path, prefix="frame_", fmt=FMT) as folder:
        with pytest.raises(Conflict, match="settings.seed: 0 -> 1"):
            folder.prepare(manifest(seed=1))
    assert_untouched(before, tmp_path)
    with OutputFolder(tmp_path, prefix="frame_", fmt=FMT, overwrite=True) as folder:
        folder.prepare(manifest(seed=1))
        assert_untouched(before, tmp_path, new_allowed=True)  # (only our lock): replacing waits for start()
        folder.start()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_check_render_request_refuses_what_render_would_without_writing_anything(tmp_path):
    y, _ = pulse_train(120, sr=22050, duration=1.0)
    audio = write_audio(tmp_path / "a.wav", y, 22050)
    style = save_style(CPPN(CPPNConfig(seed=1, hidden=8, depth=2)), tmp_path / "s.safetensors", name="s",
                       kind="procedural")
    config = RenderConfig(width=16, height=8)
    request = check_render_request(audio, style, tmp_path / "out", config=config)
    assert request.frames == (1, 30) and request.folder == tmp_path / "out"
    assert not (tmp_path / "out").exists()  # a check, not a start
    render(audio, style, tmp_path / "out", config=config)
    before = snapshot(tmp_path)
    with pytest.raises(Conflict, match="seed"):
        check_render_request(audio, style, tmp_path / "out", config=RenderConfig(width=16, height=8, seed=3))
    with pytest.raises(InvalidInput, match="frames 20-40 are outside the track"):
        check_render_request(audio, style, tmp_path / "out", config=RenderConfig(width=16, height=8, frames=(20, 40)))
    with OutputLock(tmp_path / "out"):
        with pytest.raises(Conflict, match="is being written by process"):
            check_render_request(audio, style, tmp_path / "out", config=config)
    assert_untouched(before, tmp_path)


def test_a_folder_from_before_the_fingerprint_resumes_when_its_audio_hash_matches(tmp_path):
    from backend.paths import file_sha256

    y, _ = pulse_train(120, sr=22050, duration=1.0)
    audio = write_audio(tmp_path / "a.wav", y, 22050)
    style = save_style(CPPN(CPPNConfig(seed=1, hidden=8, depth=2)), tmp_path / "s.safetensors", name="s",
                       kind="procedural")
    config = RenderConfig(width=16, height=8)
    render(audio, style, tmp_path / "out", config=config)
    path = tmp_path / "out" / "manifest.json"
    old = json.loads(path.read_text())
    del old["audio"]["fingerprint"]
    for sha, resumes in ((file_sha256(audio), True), ("0" * 64, False)):
        old["audio"]["sha256"] = sha
        path.write_text(json.dumps(old))
        if resumes:
            assert render(audio, style, tmp_path / "out", config=config).frames_skipped == 30
        else:
            with pytest.raises(Conflict, match="audio.fingerprint"):
                render(audio, style, tmp_path / "out", config=config)
