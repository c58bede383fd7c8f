import json
import subprocess
import sys

import pytest
import torch

from backend.model.cppn import CPPN, CPPNConfig
from backend.errors import InvalidInput, NotFound
from backend.styles.library import FORMAT_VERSION, list_styles, load_style, read_header, save_style


@pytest.fixture
def library(tmp_path):
    model = CPPN(CPPNConfig(hidden=16, depth=2, seed=4, out_channels=4))
    save_style(model, tmp_path / "tiny.safetensors", name="tiny", kind="trained",
               metadata={"prompt": "slow ink in water", "steps": 10})
    return tmp_path, model


def test_round_trip_rebuilds_architecture_and_weights(library):
    folder, model = library
    style = load_style("tiny", styles_dir=folder)
    assert style.kind == "trained" and style.metadata["prompt"] == "slow ink in water"
    assert style.model.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(style.model.state_dict()[key], value)
    assert len(style.sha256) == 64
    assert load_style(folder / "tiny.safetensors").name == "tiny"  # a path works too


def test_unknown_name_lists_what_exists(library):
    folder, _ = library
    with pytest.raises(NotFound, match=r"no style named 'nope'.*available: tiny"):
        load_style("nope", styles_dir=folder)


def _rewrite_header(path, mutate):
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    style = json.loads(header["__metadata__"]["audio_cppn"])
    mutate(style)
    header["__metadata__"]["audio_cppn"] = json.dumps(style)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(len(new).to_bytes(8, "little") + new + raw[8 + n:])


def test_newer_format_version_is_refused_clearly(library):
    folder, _ = library
    _rewrite_header(folder / "tiny.safetensors", lambda s: s.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(InvalidInput, match="upgrade audio-cppn"):
        load_style("tiny", styles_dir=folder)


def test_missing_header_key_and_corrupt_files_are_refused(library, tmp_path):
    folder, _ = library
    _rewrite_header(folder / "tiny.safetensors", lambda s: s.pop("config"))
    with pytest.raises(InvalidInput, match="missing 'config'"):
        load_style("tiny", styles_dir=folder)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(InvalidInput, match="not an Audio CPPN style"):
        load_style(junk)
    truncated = tmp_path / "cut.safetensors"
    model = CPPN(CPPNConfig(hidden=16, depth=2))
    save_style(model, truncated, name="cut", kind="trained")
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(InvalidInput, match="corrupt"):
        load_style(truncated)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    path = save_style(CPPN(CPPNConfig(hidden=16, depth=2)), tmp_path / "a.safetensors", name="a", kind="trained")
    _rewrite_header(path, lambda s: s["config"].update(hidden=32))
    with pytest.raises(InvalidInput, match="shape"):
        load_style(path)


def test_listing_skips_unreadable_files_and_reports_parameters(library):
    folder, model = library
    (folder / "broken.safetensors").write_bytes(b"nope")
    infos = list_styles(folder)
    assert [i.name for i in infos] == ["tiny"]
    assert infos[0].parameters == model.n_parameters
    assert infos[0].prompt == "slow ink in water"
    assert read_header(folder / "tiny.safetensors")["kind"] == "trained"


def test_styles_command_lists_library_as_table_and_json(library):
    folder, _ = library
    cmd = [sys.executable, "-m", "backend", "styles", "--styles-dir", str(folder)]
    table = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "tiny" in table and "trained" in table and "slow ink in water" in table
    listed = json.loads(subprocess.run(cmd + ["--json"], capture_output=True, text=True, check=True).stdout)
    assert listed[0]["name"] == "tiny" and listed[0]["preview"] is None
    missing = subprocess.run([sys.executable, "-m", "backend", "styles", "--styles-dir", str(folder / "x")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr


def test_a_folder_named_like_a_style_does_not_hide_it(library, tmp_path, monkeypatch):
    folder, _ = library
    work = tmp_path / "work"
    (work / "tiny").mkdir(parents=True)  # e.g. a render folder called after its style
    monkeypatch.chdir(work)
    assert load_style("tiny", styles_dir=folder).name == "tiny"


def test_wrong_types_in_a_config_are_clear_errors_and_do_not_break_the_listing(library):
    folder, _ = library
    model = CPPN(CPPNConfig(hidden=16, depth=2))
    for name, change in {"periods": {"time_periods": ["x"]}, "hidden": {"hidden": "wide"},
                         "listy": None}.items():
        path = save_style(model, folder / f"{name}.safetensors", name=name, kind="trained")
        _rewrite_header(path, lambda s: s.update(config=[1, 2]) if change is None else s["config"].update(change))
        with pytest.raises(InvalidInput, match=f"{name}.safetensors has an invalid config"):
            load_style(name, styles_dir=folder)
    problems = []
    assert [i.name for i in list_styles(folder, problems=problems)] == ["tiny"]
    assert len(problems) == 3 and all("invalid config" in p for p in problems)


def test_the_listing_names_styles_by_their_file_which_is_what_style_takes(library):
    folder, model = library
    (folder / "copy.safetensors").write_bytes((folder / "tiny.safetensors").read_bytes())
    names = [i.name for i in list_styles(folder)]
    assert names == ["copy", "tiny"]
    assert load_style("copy", styles_dir=folder).path.name == "copy.safetensors"


def test_the_recorded_hash_is_of_the_loaded_bytes(library):
    import hashlib

    folder, _ = library
    style = load_style("tiny", styles_dir=folder)
    assert style.sha256 == hashlib.sha256((folder / "tiny.safetensors").read_bytes()).hexdigest()


def test_corrupt_weights_and_odd_headers_are_clear_errors_and_the_listing_survives(library):
    folder, _ = library
    model = CPPN(CPPNConfig(hidden=16, depth=2))
    nan = save_style(model, folder / "nan.safetensors", name="nan", kind="trained")
    raw = bytearray(nan.read_bytes())
    raw[-64:] = b"\xff" * 64  # float32 0xffffffff is NaN: the header is intact, the weights are not
    nan.write_bytes(bytes(raw))
    with pytest.raises(InvalidInput, match=r"nan\.safetensors is corrupt: weight .* NaN or infinite"):
        load_style("nan", styles_dir=folder)
    # a pickle (torch.save's zip) renamed to .safetensors: its first 8 bytes are no header length
    torch.save(model.state_dict(), folder / "pickled.safetensors")
    for name, change in {"listmeta": {"metadata": [1]}, "nullmeta": {"metadata": None},
                         "numprompt": {"metadata": {"prompt": 5}}, "banana": {"kind": "banana"}}.items():
        path = save_style(model, folder / f"{name}.safetensors", name=name, kind="trained")
        _rewrite_header(path, lambda s: s.update(change))
        with pytest.raises(InvalidInput, match=f"{name}.safetensors style"):
            load_style(name, styles_dir=folder)
    problems = []  # listing reads headers only: the NaN weights are found when the style is loaded
    assert [i.name for i in list_styles(folder, problems=problems)] == ["nan", "tiny"]
    assert len(problems) == 5, problems
    table = subprocess.run([sys.executable, "-m", "backend", "styles", "--styles-dir", str(folder)],
                           capture_output=True, text=True)
    assert table.returncode == 0 and "tiny" in table.stdout and "Traceback" not in table.stderr
    assert table.stderr.count("warning: skipped") == 5


def test_a_header_cannot_make_the_loader_build_a_giant_network(tmp_path):
    path = save_style(CPPN(CPPNConfig(hidden=16, depth=2)), tmp_path / "a.safetensors", name="a", kind="trained")
    _rewrite_header(path, lambda s: s["config"].update(hidden=100000, depth=50))
    with pytest.raises(InvalidInput, match="hidden must be 1-2048 and depth 1-32"):
        load_style(path)
    _rewrite_header(path, lambda s: s["config"].update(hidden=2048, depth=32))
    with pytest.raises(InvalidInput, match="missing 60 weights"):  # checked on shapes alone, nothing allocated
        load_style(path)


def test_the_library_folder_comes_from_the_environment_and_keeps_the_bundled_styles(library, monkeypatch):
    folder, _ = library
    monkeypatch.setenv("AUDIO_CPPN_STYLES", str(folder))
    assert [i.name for i in list_styles()] == ["tiny"]
    assert load_style("tiny").path == folder / "tiny.safetensors"
    listed = json.loads(subprocess.run([sys.executable, "-m", "backend", "styles", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert [s["name"] for s in listed] == ["tiny"]
    # the shipped default stays usable by name, so `demo` and a plain `render` still work
    assert load_style("aurora").kind == "procedural"
