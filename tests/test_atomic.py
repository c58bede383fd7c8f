import os
import stat

import pytest

from backend.atomic import atomic_path, write_text
from backend.errors import InvalidInput


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "manifest.json", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_text(tmp_path / "plot.png", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_an_unwritable_place_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match=r"cannot write .*nowhere.*No such file"):
        write_text(tmp_path / "nowhere" / "f.json", "x")
