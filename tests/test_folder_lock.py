"""One writer per output folder: a second process is refused at once, and a killed holder leaves no stale lock."""

import os
import subprocess
import sys

import pytest

from backend.errors import Conflict
from backend.render.folder_lock import OutputLock, locked_by

HOLD = """
import sys, time
from backend.render.folder_lock import OutputLock
with OutputLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold_in_child(output):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(output)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


@pytest.mark.parametrize("name", ["frames", "clip.mp4"])
def test_second_writer_is_refused_with_the_holders_pid(tmp_path, name):
    output = tmp_path / name
    if name == "frames":
        output.mkdir()
    child = _hold_in_child(output)
    try:
        assert locked_by(output) == child.pid
        with pytest.raises(Conflict, match=f"process {child.pid}"):
            OutputLock(output).acquire()
    finally:
        child.kill()
        child.wait()
    assert locked_by(output) is None  # SIGKILL leaves no stale lock
    with OutputLock(output):
        assert locked_by(output) == os.getpid()
    assert locked_by(output) is None


def test_two_locks_in_one_process_also_exclude_each_other(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(Conflict):
            OutputLock(tmp_path).acquire()


def test_never_rendered_folder_is_not_locked(tmp_path):
    assert locked_by(tmp_path) is None
    assert locked_by(tmp_path / "missing") is None


def test_a_release_removes_the_lock_file_and_a_killed_holders_file_is_reused(tmp_path):
    child = _hold_in_child(tmp_path)
    child.kill()
    child.wait()
    assert (tmp_path / ".audio-cppn.lock").exists() and locked_by(tmp_path) is None  # left by SIGKILL, not held
    with OutputLock(tmp_path):
        assert locked_by(tmp_path) == os.getpid()
    assert not (tmp_path / ".audio-cppn.lock").exists()


def test_a_lock_whose_file_was_replaced_after_locking_is_taken_again_on_the_new_file(tmp_path):
    lock = OutputLock(tmp_path)
    stale = os.open(lock.path, os.O_RDWR | os.O_CREAT)  # a waiter that opened the file before it went
    lock.acquire()
    lock.release()
    import fcntl

    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the waiter now locks an unlinked file ...
    try:
        with OutputLock(tmp_path):  # ... which must not keep the next writer out, nor let two in
            assert locked_by(tmp_path) == os.getpid()
    finally:
        os.close(stale)


def test_the_lock_beside_an_mp4_fits_beside_the_longest_legal_name(tmp_path):
    video = tmp_path / ("v" * 251 + ".mp4")
    with OutputLock(video) as lock:
        assert len(lock.path.name.encode()) <= 255 and lock.path.parent == tmp_path
        assert locked_by(video) == os.getpid()
