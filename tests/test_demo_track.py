"""The demo track: deterministic, cached on first use, and its known hits found by the analysis."""

import numpy as np
import pytest
import soundfile as sf

from backend.audio.features import AudioConfig, analyze
from backend.audio.demo_track import DURATION, TEMPO, demo_track_path, synthesize_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    path = demo_track_path(folder)
    return path, synthesize_demo(44100)[1], analyze(path, config=AudioConfig(fps=30))


def test_synthesis_is_deterministic_music_of_the_stated_length():
    y, score = synthesize_demo(22050)
    again, _ = synthesize_demo(22050)
    np.testing.assert_array_equal(y, again)
    assert y.shape == (int(DURATION * 22050), 2) and y.dtype == np.float32
    assert 0.8 < np.abs(y).max() <= 0.9  # peak normalised to -1 dBFS
    assert score.tempo == TEMPO == 120
    kicks = np.asarray(score.kick_times)
    np.testing.assert_allclose(np.diff(kicks[:16]), 0.5)  # four on the floor
    assert set(np.round(np.asarray(score.snare_times[:2]) % 2.0, 6)) == {0.5, 1.5}  # beats 2 and 4
    assert [name for _, name in score.chords[:4]] == ["Am", "F", "C", "G"]
    intro = np.abs(y[: int(2.0 * 22050)]).max()
    assert intro < 0.3 * np.abs(y).max()  # a quiet intro before the drums


def test_file_is_written_once_atomically_and_reused(tmp_path):
    path = demo_track_path(tmp_path)
    stamp = path.stat().st_mtime_ns
    assert demo_track_path(tmp_path) == path and path.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert path.stat().st_size < 5 * 1024 * 1024
    info = sf.info(str(path))
    assert (info.samplerate, info.channels) == (44100, 2) and info.duration == pytest.approx(DURATION)


def test_analysis_finds_every_kick_on_its_frame(demo):
    _, score, features = demo
    onset = features.column("onset")
    for t in score.kick_times:
        frame = round(t * 30)
        assert onset[frame - 1: frame + 2].max() > 0.5, f"kick at {t} s"
    assert features.tempo == pytest.approx(TEMPO, abs=2)
    beats = features.beat_times
    for t in score.kick_times[:-1]:  # every kick of the groove is a tracked beat
        assert np.min(np.abs(beats - t)) < 1 / 30


def test_intro_is_quieter_and_chroma_follows_the_chords(demo):
    _, score, features = demo
    t = features.times
    rms = features.column("rms")
    assert np.median(rms[(t > 0.5) & (t < 1.5)]) < 0.6 * np.median(rms[(t > 4.5) & (t < 11.5)])
    chroma = features.values[:, 11:23]
    pitch = {"Am": {9, 0, 4}, "F": {5, 9, 0}, "C": {0, 4, 7}, "G": {7, 11, 2}}  # A C E, F A C, C E G, G B D
    for start, name in score.chords:  # the quiet intro and the bars with drums and bass alike
        bar = (t > start + 0.5) & (t < start + 1.8)
        top3 = set(np.argsort(chroma[bar].mean(axis=0))[-3:])
        assert top3 == pitch[name], (name, top3)
