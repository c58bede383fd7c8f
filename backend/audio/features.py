"""Per-video-frame audio features: one row per frame, 29 values in [0, 1], in FEATURE_NAMES order.

Frame ``n`` (a scene frame number) shows ``t = (n - frame_start) / fps``; a track of ``d`` seconds
has ``ceil(d * fps)`` frames (see :mod:`backend.timebase`). Each frame summarises the audio in its
window ``[t - 1/(2 fps), t + 1/(2 fps))``: energies are averaged over it, onset strength takes its
peak, so a 10 ms hit is never lost between frames.

The pipeline: decode in blocks -> mono -> 32 kHz (streaming soxr) -> per-hop measurements every
5 ms (:mod:`backend.audio.spectral`) -> per-frame means as frames complete; the 5 ms onset envelope
(small) is kept for tempo and beats (:mod:`backend.audio.beats`); finally robust per-track normalisation
and attack/release smoothing (:mod:`backend.audio.shaping`). Memory grows with the number of
frames, not with a spectrogram of the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable

import numpy as np

from backend.audio import spectral
from backend.audio.io import MIN_SECONDS, iter_source_blocks, probe_audio
from backend.audio.chords import estimate_chords, fifths_angle, root_from_angle
from backend.audio.beats import DEFAULT_TEMPO_RANGE, beat_features, track_beats
from backend.errors import InvalidInput
from backend.audio.files import Features
from backend.audio.names import BANDS, CHROMA, FEATURE_INDEX, FEATURE_NAMES
from backend.audio.shaping import shape_features
from backend.progress import Progress, ProgressCallback, report
from backend.timebase import fps_label, frame_count, frame_times, parse_fps

RAW_FLOOR_DB = -120.0  # raw dB values never go below this (digital silence)
# 2: local tempo and octave rule, chords, beat fade; 3: harmonic/percussive split, semitone chroma.
ANALYSIS_VERSION = 3  # bump when the same settings give different numbers; part of to_dict() for caches


def default_smoothing() -> dict[str, tuple[float, float]]:
    """(attack_ms, release_ms) per feature: quick rises, releases long enough to read as motion."""
    table = {"sub": (20, 180), "bass": (20, 180), "low_mid": (10, 140), "high_mid": (10, 120),
             "treble": (5, 100), "rms": (20, 200), "onset": (0, 90), "centroid": (30, 200),
             "chord_sin": (30, 200), "chord_cos": (30, 200), "chord_major": (30, 200),
             "percussive": (5, 90), "harmonic": (30, 200)}
    table.update({name: (20, 150) for name in CHROMA})
    return {name: tuple(map(float, table.get(name, (0.0, 0.0)))) for name in FEATURE_NAMES}


@dataclass
class AudioConfig:
    """How audio becomes per-frame features; saved with every render (``to_dict``)."""

    fps: Fraction = Fraction(30)  # video frames per second; "29.97" means 30000/1001 exactly
    frame_start: int = 1  # scene frame number that shows time 0
    # feature name -> (attack_ms, release_ms); a feature not listed is not smoothed
    smoothing: dict[str, tuple[float, float]] = field(default_factory=default_smoothing)
    zero_phase: bool = True  # peaks stay on their frame (rise before, fall after); False = causal follower
    level_percentiles: tuple[float, float] = (5.0, 97.0)  # track percentiles of dB levels/centroid mapped to 0 and 1
    onset_percentile: float = 90.0  # percentile of onset peak heights mapped to 1 (the top tenth of hits saturate)
    floor_db: float = -80.0  # dBFS at or below which a band, or a whole frame (by RMS), counts as silent
    min_range_db: float = 12.0  # smallest dB span stretched over 0..1: steadier levels stay near 0
    max_range_db: float = 48.0  # widest span: levels further below a feature's loud parts count as off
    min_range_octaves: float = 1.0  # the same for the spectral centroid
    beat_pulse_decay_ms: float = 150.0  # the beat pulse falls to 1/e this long after each beat
    start_bpm: float = 120.0  # centre of the tempo prior (octave errors lean towards it)
    # User hints, because no tracker is right on every song:
    bpm: float | None = None  # fit the beat grid at this tempo (the phase still comes from the audio)
    tempo_range: tuple[float, float] = DEFAULT_TEMPO_RANGE  # BPM range searched for the beat
    beat_times: tuple[float, ...] | None = None  # the beats themselves (seconds), e.g. from a DJ tool
    max_seconds: float = 6 * 3600.0  # longer audio is refused rather than filling memory
    span_seconds: float | None = None  # analyse only the track's first SPAN seconds (a preview); None = all

    def __post_init__(self):
        self.fps = parse_fps(self.fps)  # at most MAX_FPS == spectral.HOP_RATE: one frame per hop
        self.frame_start = int(self.frame_start)
        smoothing = {}
        for name, value in dict(self.smoothing).items():
            if name not in FEATURE_INDEX:
                raise InvalidInput(f"smoothing names an unknown feature {name!r}; known: {', '.join(FEATURE_NAMES)}")
            attack, release = (float(v) for v in value)
            if not (attack >= 0 and release >= 0 and math.isfinite(attack + release)):
                raise InvalidInput(f"smoothing for {name} must be (attack_ms, release_ms) >= 0, got {value}")
            smoothing[name] = (attack, release)
        self.smoothing = smoothing
        lo, hi = self.level_percentiles
        if not 0 <= lo < hi <= 100:
            raise InvalidInput(f"level_percentiles must satisfy 0 <= low < high <= 100, got {self.level_percentiles}")
        if not 0 < self.onset_percentile <= 100:
            raise InvalidInput(f"onset_percentile must be in (0, 100], got {self.onset_percentile}")
        if not (0 < self.min_range_db <= self.max_range_db and self.min_range_octaves > 0
                and self.beat_pulse_decay_ms >= 0 and self.start_bpm > 0
                and self.max_seconds > 0):
            raise InvalidInput("min_range_db (<= max_range_db), min_range_octaves, start_bpm and max_seconds "
                               "must be > 0, beat_pulse_decay_ms >= 0")
        if self.span_seconds is not None:
            if not isinstance(self.span_seconds, (int, float)) or not MIN_SECONDS <= self.span_seconds < math.inf:
                raise InvalidInput(f"span_seconds must be a finite number >= {MIN_SECONDS}, got {self.span_seconds}")
            self.span_seconds = float(self.span_seconds)

        try:
            lo, hi = (float(v) for v in self.tempo_range)
            bpm = None if self.bpm is None else float(self.bpm)
            beats = None if self.beat_times is None else tuple(float(t) for t in self.beat_times)
        except (TypeError, ValueError):
            raise InvalidInput(f"beat hints must be numbers: tempo range LOW-HIGH, bpm, beat times in seconds; "
                               f"got {self.tempo_range!r}, {self.bpm!r}, and beat times "
                               f"{str(self.beat_times)[:40]}") from None
        if not 20 <= lo < hi <= 400:
            raise InvalidInput(f"tempo range must be LOW-HIGH BPM with 20 <= LOW < HIGH <= 400, got {lo:g}-{hi:g}")
        self.tempo_range = (lo, hi)
        if bpm is not None:
            if not 20 <= bpm <= 400:
                raise InvalidInput(f"bpm must be between 20 and 400, got {bpm:g}")
            self.bpm = bpm
        if beats is not None:
            if len(beats) < 2 or not all(math.isfinite(t) and t >= 0 for t in beats) or \
                    any(b <= a for a, b in zip(beats, beats[1:])):
                raise InvalidInput("beat times must be at least two increasing times in seconds, >= 0")
            self.beat_times = beats

    def to_dict(self) -> dict:
        return {"analysis_version": ANALYSIS_VERSION, "fps": fps_label(self.fps), "frame_start": self.frame_start,
                "smoothing": {k: list(v) for k, v in self.smoothing.items()}, "zero_phase": self.zero_phase,
                "level_percentiles": list(self.level_percentiles), "onset_percentile": self.onset_percentile,
                "floor_db": self.floor_db, "min_range_db": self.min_range_db, "max_range_db": self.max_range_db,
                "min_range_octaves": self.min_range_octaves, "beat_pulse_decay_ms": self.beat_pulse_decay_ms,
                "start_bpm": self.start_bpm, "max_seconds": self.max_seconds, "bpm": self.bpm,
                "tempo_range": list(self.tempo_range),
                "beat_times": None if self.beat_times is None else list(self.beat_times),
                # only when set: a whole-track analysis keeps the dict (and every cache key) it always had
                **({"span_seconds": self.span_seconds} if self.span_seconds is not None else {})}

    @classmethod
    def from_dict(cls, data: dict) -> "AudioConfig":
        data = dict(data)
        data.pop("analysis_version", None)
        for name in ("level_percentiles", "tempo_range"):
            if name in data:
                data[name] = tuple(data[name])
        return cls(**data)


def analyze(path, *, config: AudioConfig | None = None, progress: ProgressCallback | None = None,
            block_seconds: float = 30.0) -> Features:
    """Features of an audio (or video) file, streamed in blocks of ``block_seconds``.

    Raises NotFound / InvalidInput for files that cannot be analysed (see ``probe_audio``).
    With ``config.span_seconds`` only the track's start is decoded and analysed, as if the file
    ended there: its normalisation and beats come from that part alone.
    """
    config = config or AudioConfig()
    info = probe_audio(path)
    limit = None if config.span_seconds is None else int(round(config.span_seconds * info.sample_rate))
    expected = info.n_samples if limit is None else min(limit, info.n_samples)
    _check_length(expected, info.sample_rate, config, str(info.path))
    blocks = iter_source_blocks(info, block_frames=max(1, int(block_seconds * info.sample_rate)), limit=limit)
    return analyze_blocks(blocks, info.sample_rate, config=config, progress=progress,
                          expected_samples=expected)


def compute_features(y: np.ndarray, sr: int, *, config: AudioConfig | None = None,
                     progress: ProgressCallback | None = None) -> Features:
    """Features of a signal ``y``: shape (n,) mono or (n, channels) like soundfile, at ``sr`` Hz.

    Float samples are full scale at +-1; signed integer samples (e.g. int16 PCM) are scaled to that.
    """
    config = config or AudioConfig()
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.signedinteger):
        y = y.astype(np.float32) / float(2 ** (8 * y.dtype.itemsize - 1))
    if y.ndim == 2 and y.shape[0] < y.shape[1] and y.shape[0] <= 8:
        raise InvalidInput(f"y must be (n_samples,) or (n_samples, channels), got shape {y.shape}; "
                           "transpose channels-first audio")
    if y.ndim not in (1, 2) or not np.issubdtype(y.dtype, np.number):
        raise InvalidInput(f"y must be a numeric array (n_samples,) or (n_samples, channels), got {y.shape}")
    if not (isinstance(sr, (int, np.integer)) and sr > 0):
        raise InvalidInput(f"sr must be a positive integer, got {sr!r}")
    y = y.reshape(len(y), -1)
    _check_length(len(y), int(sr), config, "audio")
    step = int(sr) * 30
    blocks = (y[i: i + step].astype(np.float32) for i in range(0, len(y), step))
    return analyze_blocks(blocks, int(sr), config=config, progress=progress, expected_samples=len(y))


def analyze_blocks(blocks: Iterable[np.ndarray], sample_rate: int, *, config: AudioConfig | None = None,
                   progress: ProgressCallback | None = None, expected_samples: int = 0) -> Features:
    """The streaming core: blocks (n, channels) float32 at ``sample_rate`` in order -> Features.

    ``expected_samples`` only sizes the progress bar; the frame count follows the samples seen.
    """
    import soxr

    config = config or AudioConfig()
    fps = config.fps
    resampler = None if sample_rate == spectral.ANALYSIS_RATE else soxr.ResampleStream(
        sample_rate, spectral.ANALYSIS_RATE, 1, dtype="float32")
    hops = spectral.HopAnalyzer()
    frame_means = spectral.FrameMeans(fps, spectral.N_LEVEL_COLUMNS)
    onset_parts, level_parts = [], []
    n_samples = 0
    total_s = math.ceil(expected_samples / sample_rate)
    for block in blocks:
        block = np.asarray(block, dtype=np.float32).reshape(len(block), -1)
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            at = (n_samples + int(np.argmin(finite))) / sample_rate
            raise InvalidInput(f"the audio contains NaN or infinite samples at {at:.2f} s")
        n_samples += len(block)
        _check_length(n_samples, sample_rate, config, "the audio", minimum=False)
        mono = block.mean(axis=1, keepdims=True)
        resampled = resampler.resample_chunk(mono) if resampler is not None else mono
        onset, levels = hops.push(resampled)
        onset_parts.append(onset)
        level_parts.append(frame_means.push(levels))
        seconds = int(n_samples / sample_rate)
        total = max(total_s, seconds, 1)
        # The last second counts only once beats and chords are found: the bar never sits at 100 %
        # while they take their time (the first run on a machine compiles them, about half a minute).
        report(progress, Progress("analyse", done=min(seconds, total - 1), total=total, message=f"{seconds} s read"))
    if resampler is not None:
        onset, levels = hops.push(resampler.resample_chunk(np.zeros((0, 1), np.float32), last=True))
        onset_parts.append(onset)
        level_parts.append(frame_means.push(levels))
    if n_samples / sample_rate < MIN_SECONDS:
        raise InvalidInput(f"the audio holds {n_samples / sample_rate:.2f} s; analysis needs at least {MIN_SECONDS} s")
    onset, levels = hops.finish()
    onset_parts.append(onset)
    level_parts.append(frame_means.push(levels))
    n_frames = frame_count(n_samples, sample_rate, fps)
    level_parts.append(frame_means.finish(n_frames))
    frame_levels = np.concatenate(level_parts)[:n_frames]  # (n_frames, N_LEVEL_COLUMNS)
    envelope = np.concatenate(onset_parts)  # (n_hops,) at HOP_RATE, read ONSET_DELAY_SAMPLES late
    total = max(total_s, int(n_samples / sample_rate), 1)
    report(progress, Progress("analyse", done=total - 1, total=total,
                              message="finding beats and chords (the first run on a machine compiles them: about 30 s)"))
    grid = track_beats(envelope, hop_rate=spectral.HOP_RATE, start_bpm=config.start_bpm,
                       delay_s=spectral.ONSET_DELAY_SAMPLES / spectral.ANALYSIS_RATE, bpm=config.bpm,
                       tempo_range=config.tempo_range, beat_times=config.beat_times)
    times = frame_times(n_frames, fps)
    onset = spectral.window_max(envelope, fps, n_frames, spectral.ONSET_DELAY_SAMPLES)
    raw = _raw_features(frame_levels, onset, grid, times, config)
    values = shape_features(raw, config)
    values[values < 1e-6] = 0.0  # smoothing tails decay towards 1e-45: a file should read 0 there
    report(progress, Progress("analyse", done=total, total=total, message="done"))
    return Features(values=values.astype(np.float32), raw=raw.astype(np.float32), names=FEATURE_NAMES,
                    times=times, fps=fps, frame_start=config.frame_start, duration=n_samples / sample_rate,
                    sample_rate=int(sample_rate), tempo=float(grid.tempo), beat_times=grid.beat_times,
                    config=config.to_dict())


def chord_roots(features: Features) -> np.ndarray:
    """The chord root per frame (0 = C .. 11 = B; -1 without a chord), read back from the raw features."""
    sin, cos = features.raw_column("chord_sin"), features.raw_column("chord_cos")
    return np.where(np.hypot(sin, cos) > 0.5, root_from_angle(np.arctan2(sin, cos)), -1)


def _check_length(n_samples: int, sample_rate: int, config: AudioConfig, what: str, minimum: bool = True) -> None:
    seconds = n_samples / sample_rate
    if seconds > config.max_seconds:
        raise InvalidInput(f"{what} is {seconds / 3600:.2f} h long; analysis is limited to "
                           f"{config.max_seconds / 3600:g} h (AudioConfig.max_seconds) — split the file")
    if minimum and seconds < MIN_SECONDS:
        raise InvalidInput(f"{what} holds {seconds:.2f} s; analysis needs at least {MIN_SECONDS} s")


def _db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 10 ** (RAW_FLOOR_DB / 10)))


def _raw_features(levels: np.ndarray, onset: np.ndarray, grid, times: np.ndarray,
                  config: AudioConfig) -> np.ndarray:
    """Physical per-frame values (n_frames, 29): dB, flux, pulse, sin/cos, BPM, chroma / strongest, Hz, chord, dB."""
    raw = np.zeros((len(times), len(FEATURE_NAMES)), np.float64)
    for k, band in enumerate(BANDS):
        raw[:, FEATURE_INDEX[band]] = _db(levels[:, spectral.COL_BANDS][:, k])
    raw[:, FEATURE_INDEX["rms"]] = _db(levels[:, spectral.COL_MS])
    raw[:, FEATURE_INDEX["percussive"]] = _db(levels[:, spectral.COL_PERCUSSIVE])
    raw[:, FEATURE_INDEX["harmonic"]] = _db(levels[:, spectral.COL_HARMONIC])
    raw[:, FEATURE_INDEX["onset"]] = onset
    beats = beat_features(grid, times, config.fps, pulse_decay_s=config.beat_pulse_decay_ms / 1000)
    has_beats = len(grid.beat_times) > 0
    raw[:, FEATURE_INDEX["beat_pulse"]] = beats["beat_pulse"]
    # Scaled by the beat's presence: the shaping reads their length as how much beat there is.
    presence = beats["beat_presence"] * has_beats
    raw[:, FEATURE_INDEX["beat_sin"]] = np.sin(2 * np.pi * beats["beat_phase"]) * presence
    raw[:, FEATURE_INDEX["beat_cos"]] = np.cos(2 * np.pi * beats["beat_phase"]) * presence
    raw[:, FEATURE_INDEX["tempo"]] = beats["tempo"]
    chroma = levels[:, spectral.COL_CHROMA]  # of the harmonic part: drum hits are left out
    peak = chroma.max(axis=1, keepdims=True)
    raw[:, FEATURE_INDEX[CHROMA[0]]: FEATURE_INDEX[CHROMA[-1]] + 1] = np.divide(
        chroma, peak, out=np.zeros_like(chroma), where=peak > 1e-12)
    active = raw[:, FEATURE_INDEX["rms"]] > config.floor_db
    root, major = estimate_chords(chroma, active, config.fps.numerator / config.fps.denominator)
    has_chord = root >= 0
    angle = fifths_angle(np.maximum(root, 0))
    raw[:, FEATURE_INDEX["chord_sin"]] = np.sin(angle) * has_chord  # length 1 where a chord is heard
    raw[:, FEATURE_INDEX["chord_cos"]] = np.cos(angle) * has_chord
    raw[:, FEATURE_INDEX["chord_major"]] = np.where(major, 1.0, -1.0) * has_chord
    power = levels[:, spectral.COL_POWER]
    raw[:, FEATURE_INDEX["centroid"]] = np.divide(levels[:, spectral.COL_FREQ_POWER], power,
                                                  out=np.zeros_like(power), where=power > 1e-12)
    return raw
