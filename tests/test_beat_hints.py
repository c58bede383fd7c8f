"""Beat hints read the same way by the command line and the service (backend/audio/hints.py)."""

import os

import pytest

from backend.audio.hints import parse_tempo_range, read_beats_file
from backend.errors import InvalidInput, NotFound


def test_a_beats_file_from_a_dj_tool_or_sonic_visualiser_reads_as_seconds(tmp_path):
    path = tmp_path / "beats.txt"
    path.write_text("# exported\n0.5\n1.0\tbeat 2\n\n1.5, downbeat\n")
    assert read_beats_file(path) == (0.5, 1.0, 1.5)


def test_a_bad_line_is_named(tmp_path):
    path = tmp_path / "beats.txt"
    path.write_text("0.5\nsoon\n")
    with pytest.raises(InvalidInput, match="beats.txt line 2: expected a time in seconds, got 'soon'"):
        read_beats_file(path)


def test_a_pipe_or_a_missing_file_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(InvalidInput, match="pipe"):
        read_beats_file(tmp_path / "pipe.txt")  # opening a FIFO for reading would block forever
    with pytest.raises(NotFound):
        read_beats_file(tmp_path / "missing.txt")


@pytest.mark.parametrize("text,expected", [("70-140", (70.0, 140.0)), ("60.5-90", (60.5, 90.0))])
def test_tempo_range(text, expected):
    assert parse_tempo_range(text) == expected


@pytest.mark.parametrize("text", ["fast", "70", "70-", "-140"])
def test_a_tempo_range_that_is_not_two_numbers_is_refused(text):
    with pytest.raises(InvalidInput, match="tempo range must look like 70-140"):
        parse_tempo_range(text)
