from fractions import Fraction

import pytest

from backend.errors import InvalidInput
from backend.timebase import frame_count, frame_of_time, parse_fps


@pytest.mark.parametrize("text,expected", [
    ("30", Fraction(30)), ("24", Fraction(24)), ("25", Fraction(25)), ("60", Fraction(60)),
    ("29.97", Fraction(30000, 1001)), ("30000/1001", Fraction(30000, 1001)), (29.97, Fraction(30000, 1001)),
    ("23.976", Fraction(24000, 1001)), ("59.94", Fraction(60000, 1001)), ("12.5", Fraction(25, 2)),
])
def test_parse_fps_is_exact(text, expected):
    assert parse_fps(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "", "abc", "1/0", float("nan"), "2000"])
def test_parse_fps_rejects_nonsense(text):
    with pytest.raises(InvalidInput, match="fps"):
        parse_fps(text)


def test_frame_count_is_ceil_of_duration_times_fps():
    ntsc = Fraction(30000, 1001)
    assert frame_count(48000 * 10, 48000, Fraction(30)) == 300  # exactly 10 s: no extra frame
    assert frame_count(48000 * 10 + 1, 48000, Fraction(30)) == 301  # one sample more needs a frame
    assert frame_count(48000 * 10, 48000, ntsc) == 300  # 299.7 -> 300
    assert frame_count(1, 44100, Fraction(24)) == 1


def test_frame_of_time_rounds_to_nearest_frame_from_start():
    assert frame_of_time(0.0, Fraction(30), 1) == 1
    assert frame_of_time(1.0, Fraction(30000, 1001), 1) == 1 + 30  # 29.97 frames, rounded
    assert frame_of_time(0.52, Fraction(25), 100) == 113
