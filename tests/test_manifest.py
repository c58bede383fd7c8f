"""manifest.json's rules (backend/render/manifest.py): finished ranges merge, a resume compares only
what shapes the frames and names each change, and a manifest is read and written safely."""

import json

import pytest

from backend.errors import InvalidInput
from backend.render.manifest import (FORMAT_VERSION, MANIFEST_NAME, differences, merge_ranges, read_manifest,
                                     write_manifest)

AUDIO_HASH, STYLE_HASH = "a" * 64, "b" * 64


def manifest(**changes):
    data = {
        "format_version": FORMAT_VERSION, "version": "0.1.0",
        "audio": {"path": "/music/song.wav", "sha256": AUDIO_HASH, "duration": 10.0},
        "fps": "30", "size": [1280, 720], "frame_start": 1,
        "style": {"name": "aurora", "kind": "procedural", "sha256": STYLE_HASH, "path": "/styles/aurora.safetensors"},
        "settings": {"format": "exr", "prefix": "frame_", "seed": 0, "reactivity": {"amount": 1.0, "gains": {}}},
        "ranges": [[1, 100]], "device": "cpu", "created": "2026-12-01T10:00:00+00:00",
        "updated": "2026-12-01T10:05:00+00:00",
    }
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) and isinstance(value, dict) else value
    return data


@pytest.mark.parametrize("ranges,merged", [
    ([], []),
    ([[1, 10]], [[1, 10]]),
    ([[20, 30], [1, 10]], [[1, 10], [20, 30]]),  # sorted
    ([[1, 10], [11, 20]], [[1, 20]]),  # touching ranges join: 10 and 11 leave no gap
    ([[1, 10], [12, 20]], [[1, 10], [12, 20]]),  # frame 11 is missing: kept apart
    ([[1, 10], [5, 7], [8, 15]], [[1, 15]]),  # overlapping and inside
    ([[5, 5], [5, 5]], [[5, 5]]),
])
def test_finished_ranges_merge_into_the_fewest_sorted_ranges(ranges, merged):
    assert merge_ranges(ranges) == merged


def test_the_same_render_anywhere_has_no_differences():
    """Where the audio lives, the ranges done, the device and the times are not what the frames are."""
    again = manifest(audio={"path": "/elsewhere/song.wav"}, style={"path": "/other/aurora.safetensors"},
                     ranges=[[1, 300]], device="cuda", created="2026-12-02T00:00:00+00:00")
    assert differences(manifest(), again) == []


def test_each_changed_setting_is_named_with_its_old_and_new_value():
    changed = manifest(size=[640, 360], settings={"seed": 3}, fps="29.97")
    assert differences(manifest(), changed) == ["fps: 30 -> 29.97", "settings.seed: 0 -> 3",
                                                "size: [1280, 720] -> [640, 360]"]
    nested = manifest(settings={"reactivity": {"amount": 0.5, "gains": {"bass": 2.0}}})
    assert differences(manifest(), nested) == ["settings.reactivity.amount: 1.0 -> 0.5",
                                               "settings.reactivity.gains.bass: null -> 2.0"]


def test_other_audio_or_style_bytes_are_a_difference_shown_by_short_hash():
    lines = differences(manifest(), manifest(audio={"sha256": "c" * 64}, style={"sha256": "d" * 64}))
    assert lines == [f"audio.sha256: {'a' * 12}… -> {'c' * 12}…", f"style.sha256: {'b' * 12}… -> {'d' * 12}…"]


def test_a_newer_audio_cppn_or_manifest_format_is_a_difference():
    assert differences(manifest(), manifest(version="0.2.0")) == ["version: 0.1.0 -> 0.2.0"]
    assert differences(manifest(), manifest(format_version=FORMAT_VERSION + 1)) == [
        f"format_version: {FORMAT_VERSION} -> {FORMAT_VERSION + 1}"]


def test_long_values_are_cut_to_one_readable_line():
    long = manifest(settings={"prefix": "x" * 200})
    (line,) = differences(manifest(), long)
    assert line.startswith("settings.prefix: frame_ -> xxx") and line.endswith("...") and len(line) < 100


def test_write_then_read_gives_the_same_manifest_and_no_manifest_is_none(tmp_path):
    assert read_manifest(tmp_path) is None
    data = manifest()
    path = write_manifest(tmp_path, data)
    assert path == tmp_path / MANIFEST_NAME and read_manifest(tmp_path) == data
    assert path.read_text().endswith("\n") and json.loads(path.read_text()) == data  # plain JSON for any tool
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]  # no temporary file left behind


@pytest.mark.parametrize("text,message", [("{not json", "not a readable render manifest"),
                                          ('["a list"]', "not an audio-cppn render manifest"),
                                          ('{"frames": 3}', "not an audio-cppn render manifest")])
def test_a_broken_or_foreign_manifest_is_a_clear_error(tmp_path, text, message):
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(InvalidInput, match=message):
        read_manifest(tmp_path)
