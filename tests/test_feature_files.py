"""The one reader of features files: audio-cppn's own .npz/.json, and bare arrays from other tools."""

import json
from fractions import Fraction

import numpy as np
import pytest

from backend.audio.features import AudioConfig, compute_features
from backend.audio.files import load_features, save_features
from backend.audio.names import FEATURE_NAMES
from backend.errors import InvalidInput, NotFound
from backend.train.audio_rows import read_feature_file
from tests.helpers.signals import pulse_train


@pytest.fixture(scope="module")
def features():
    y, _ = pulse_train(120, sr=22050, duration=2.0)
    return compute_features(y, 22050, config=AudioConfig(fps=25, frame_start=11))


def test_training_reads_what_the_features_command_writes(features, tmp_path):
    for suffix in (".npz", ".json"):
        rows = read_feature_file(save_features(features, tmp_path / f"song{suffix}"))
        np.testing.assert_allclose(rows.values, features.values, atol=1e-6)
        np.testing.assert_allclose(rows.times, features.times, atol=1e-6)


def test_bare_arrays_read_as_30_fps_from_frame_1(tmp_path):
    values = np.random.default_rng(0).uniform(0, 1, (45, len(FEATURE_NAMES))).astype(np.float32)
    np.save(tmp_path / "bare.npy", values)
    np.savez(tmp_path / "bare.npz", values=values)
    times = np.arange(45) / 15.0
    np.savez(tmp_path / "timed.npz", features=values, times=times)
    for name in ("bare.npy", "bare.npz"):
        back = load_features(tmp_path / name)
        assert np.array_equal(back.values, values) and back.names == FEATURE_NAMES
        assert (back.fps, back.frame_start, back.duration) == (Fraction(30), 1, 1.5)
        np.testing.assert_allclose(back.times, np.arange(45) / 30.0)
    np.testing.assert_allclose(load_features(tmp_path / "timed.npz").times, times)


def test_files_that_are_not_features_are_refused_with_the_reason(features, tmp_path):
    good = np.zeros((10, len(FEATURE_NAMES)), np.float32)
    cases = {
        "narrow.npy": (lambda p: np.save(p, np.zeros((10, 5), np.float32)), rf"must have shape \(frames, {len(FEATURE_NAMES)}\), got \(10, 5\)"),
        "empty.npy": (lambda p: np.save(p, np.zeros((0, len(FEATURE_NAMES)), np.float32)), rf"must have shape \(frames, {len(FEATURE_NAMES)}\)"),
        "nan.npy": (lambda p: np.save(p, np.where(np.eye(10, len(FEATURE_NAMES)) > 0, np.nan, good)), "NaN or infinite"),
        "renamed.npz": (lambda p: np.savez(p, features=good, names=np.array([f"x{i}" for i in range(len(FEATURE_NAMES))])),
                        f"expected the canonical {len(FEATURE_NAMES)}"),
        "older.npz": (lambda p: np.savez(p, features=np.zeros((10, 24), np.float32), names=np.array(FEATURE_NAMES[:24])),
                      "written by an older audio-cppn analysis \\(24 features"),
        "other.npz": (lambda p: np.savez(p, weights=good), r"has no 'features' array; it holds \['weights'\]"),
        "list.json": (lambda p: p.write_text(json.dumps([1, 2])), "is not a features file audio-cppn can read"),
        "text.npz": (lambda p: p.write_text("hello"), "is not a features file audio-cppn can read"),
        "table.csv": (lambda p: save_features(features, p), r"features files are read from \.npz, \.json, \.npy"),
    }
    for name, (write, message) in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(InvalidInput, match=message):
            load_features(path)
    with pytest.raises(NotFound, match="features file not found"):
        load_features(tmp_path / "missing.npz")
