import numpy as np
import pytest
import torch

from backend.train.audio_rows import AudioSampler, FeatureRows, analysed_rows, check_source, spread_rows
from backend.audio.files import load_features
from backend.errors import InvalidInput, NotFound
from backend.audio.names import FEATURE_NAMES
from tests.helpers.signals import tone, write_audio
from tests.helpers.tiny_clip import synthetic_features


@pytest.fixture
def rows():
    values, times = synthetic_features(n=240)
    return FeatureRows(values=values, times=times, source="synthetic")


def real_rows(rows: FeatureRows) -> set[tuple]:
    return {tuple(r) for r in rows.values.tolist()}


def test_every_batch_element_gets_its_own_time_over_the_whole_range(rows):
    time_s, audio = AudioSampler(rows, time_range_s=600.0).sample(16, generator=torch.Generator().manual_seed(0))
    assert time_s.shape == (16,) and time_s.dtype == torch.float64
    assert audio.shape == (16, len(FEATURE_NAMES)) and audio.dtype == torch.float32
    assert len(set(time_s.tolist())) == 16
    many, _ = AudioSampler(rows, time_range_s=600.0).sample(2000, generator=torch.Generator().manual_seed(1))
    assert many.min() >= 0 and many.max() < 600
    assert many.min() < 10 and many.max() > 590 and abs(many.mean().item() - 300) < 20  # uniform, not near 0


def test_audio_rows_differ_per_element_and_come_from_the_music(rows):
    _, audio = AudioSampler(rows, remix=0.0).sample(16, generator=torch.Generator().manual_seed(0))
    assert len({tuple(r) for r in audio.tolist()}) >= 12  # not one row for the whole batch
    assert all(tuple(r) in real_rows(rows) for r in audio.tolist())  # remix 0: real frames only


def test_values_follow_the_source_features_distribution(rows):
    _, audio = AudioSampler(rows, remix=0.25).sample(4000, generator=torch.Generator().manual_seed(0))
    audio, source = audio.numpy(), rows.values
    assert (audio.min(axis=0) >= source.min(axis=0)).all() and (audio.max(axis=0) <= source.max(axis=0)).all()
    assert np.allclose(audio.mean(axis=0), source.mean(axis=0), atol=0.03)
    assert np.allclose(audio.std(axis=0), source.std(axis=0), rtol=0.2, atol=0.01)


def test_a_fraction_of_rows_is_remixed_feature_by_feature(rows):
    real = real_rows(rows)
    _, audio = AudioSampler(rows, remix=0.25).sample(2000, generator=torch.Generator().manual_seed(0))
    remixed = np.mean([tuple(r) not in real for r in audio.tolist()])
    assert 0.18 < remixed < 0.32
    _, mixed = AudioSampler(rows, remix=1.0).sample(200, generator=torch.Generator().manual_seed(0))
    assert np.mean([tuple(r) not in real for r in mixed.tolist()]) > 0.95
    for j in range(rows.values.shape[1]):  # each value still one the track made for that feature
        assert np.isin(mixed[:, j].numpy(), rows.values[:, j]).all()


def test_draws_come_only_from_the_generator(rows):
    sampler = AudioSampler(rows)
    torch.manual_seed(123)
    a = sampler.sample(8, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(456)
    b = sampler.sample(8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_spread_rows_avoid_the_ends(rows):
    time_s, audio = spread_rows(rows, 4)
    assert time_s.tolist() == pytest.approx(rows.times[[30, 90, 150, 210]].tolist())
    assert torch.equal(audio, torch.from_numpy(rows.values[[30, 90, 150, 210]]))


def test_check_source_reads_feature_files_and_probes_audio(features_file, tmp_path):
    assert check_source(None) is None
    assert check_source(features_file).values.shape == (240, len(FEATURE_NAMES))
    with pytest.raises(NotFound, match="features file not found"):
        check_source(tmp_path / "none.npz")
    with pytest.raises(NotFound, match="audio file not found"):
        check_source(tmp_path / "none.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    with pytest.raises(InvalidInput, match="not a readable audio file"):
        check_source(junk)


def test_analysed_features_are_cached_in_the_project_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIO_CPPN_CACHE", str(tmp_path / "cache"))
    audio = write_audio(tmp_path / "tone.wav", tone(220.0, sr=22050, duration=2.0), sr=22050)
    first = analysed_rows(audio)
    cached = list((tmp_path / "cache" / "features").glob("tone-*.npz"))
    assert len(cached) == 1
    again = analysed_rows(audio)
    assert np.array_equal(first.values, again.values) and again.source == str(audio)


def test_a_cached_analysis_is_reused_only_for_the_same_audio_and_analysis_version(tmp_path, monkeypatch):
    import backend.audio.features as analysis

    monkeypatch.setenv("AUDIO_CPPN_CACHE", str(tmp_path / "cache"))
    audio = write_audio(tmp_path / "tone.wav", tone(220.0, sr=22050, duration=2.0), sr=22050)
    first = analysed_rows(audio)
    analysed = []
    real_analyze = analysis.analyze
    monkeypatch.setattr(analysis, "analyze", lambda *a, **k: analysed.append(a[0]) or real_analyze(*a, **k))
    assert np.array_equal(analysed_rows(audio).values, first.values) and analysed == []  # from the cache

    monkeypatch.setattr(analysis, "ANALYSIS_VERSION", analysis.ANALYSIS_VERSION + 1)  # a new analysis
    analysed_rows(audio)
    assert len(analysed) == 1
    write_audio(audio, tone(440.0, sr=22050, duration=2.0), sr=22050)  # same name, other sound
    changed = analysed_rows(audio)
    assert len(analysed) == 2 and not np.array_equal(changed.values, first.values)
    cached = sorted((tmp_path / "cache" / "features").glob("tone-*.npz"))
    assert len(cached) == 3
    for path in cached:  # the cache holds ordinary features files, readable by the one reader
        assert load_features(path).n_frames == len(first.values)
