"""Training checkpoints (backend/train/checkpoint.py): everything a run needs round-trips, so a
restored run takes exactly the steps the original would; bad files are clear errors, never
unpickled; a failed write keeps the previous checkpoint; a resume with other settings is refused."""

import pytest
import torch

import backend.train.checkpoint as checkpoint_module
from backend.errors import Cancelled, Conflict, InvalidInput
from backend.model.cppn import CPPN, CPPNConfig
from backend.styles.library import list_styles
from backend.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from backend.train.run import TrainConfig, train
from backend.audio.names import FEATURE_NAMES

STATE = {"step": 2, "prompt": "ink in water", "settings": {"lr": 0.01, "resolutions": [32, 48]},
         "history": {"steps": [{"step": 1, "similarity": 0.21}]}, "best": {"step": 2, "score": 0.25},
         "elapsed_s": 1.5}


def a_run(seed=0):
    """A tiny network, its Adam and its sampler generator, a few steps in (Adam's moments are non-zero)."""
    torch.manual_seed(seed)
    model = CPPN(CPPNConfig(hidden=8, depth=2, seed=seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):
        step(model, optimizer, generator)
    return model, optimizer, generator


def step(model, optimizer, generator):
    coords = torch.rand(16, 3, generator=generator) * 2 - 1
    loss = model(coords, torch.rand(1, generator=generator), torch.rand(1, len(FEATURE_NAMES), generator=generator)).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def save(path, model, optimizer, generator, state=STATE):
    best = {k: v.clone() * 0.5 for k, v in model.state_dict().items()}  # some other weights
    return save_checkpoint(path, model=model, best=best, optimizer=optimizer, rng=generator.get_state(), state=state)


def test_a_restored_run_takes_exactly_the_steps_the_original_would(tmp_path):
    model, optimizer, generator = a_run()
    path = save(tmp_path / "run.ckpt.safetensors", model, optimizer, generator)
    saved = load_checkpoint(path)
    assert saved.state == STATE
    assert all(torch.equal(saved.best[k], v * 0.5) for k, v in model.state_dict().items())

    restored_model = CPPN(CPPNConfig(hidden=8, depth=2, seed=99))  # other weights until restored
    restored_optimizer = torch.optim.Adam(restored_model.parameters(), lr=0.5)  # other lr until restored
    restored_model.load_state_dict(saved.model)
    restored_optimizer.load_state_dict(saved.optimizer)
    restored_generator = torch.Generator()
    restored_generator.set_state(saved.rng)
    for _ in range(3):  # the original carries on; the restored copy must follow it bit for bit
        step(model, optimizer, generator)
        step(restored_model, restored_optimizer, restored_generator)
    for key, value in model.state_dict().items():
        assert torch.equal(restored_model.state_dict()[key], value), key
    assert restored_optimizer.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize("content,message", [
    (b"", "unreadable"),
    (b"this is not a checkpoint", "unreadable"),
    ("pickle", "unreadable"),
    ("plain safetensors", "unreadable"),
    ("future version", "has version 2, expected 1"),
])
def test_bad_files_are_one_clear_error_and_never_unpickled(tmp_path, monkeypatch, content, message):
    path = tmp_path / "bad.ckpt.safetensors"
    if content == "pickle":  # torch.save's pickle under our name: its first 8 bytes are no header length
        torch.save({"model": CPPN(CPPNConfig(hidden=4, depth=1)).state_dict()}, path)
        monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a checkpoint was unpickled"))
    elif content == "plain safetensors":  # someone else's safetensors file: no run state in its header
        from safetensors.torch import save_file
        save_file({"w": torch.zeros(2)}, str(path))
    elif content == "future version":
        monkeypatch.setattr(checkpoint_module, "CHECKPOINT_VERSION", 2)  # written by a newer audio-cppn
        save(path, *a_run())
        monkeypatch.undo()
    else:
        path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message) as error:
        load_checkpoint(path)
    assert "\n" not in error.value.message


def test_a_failed_write_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    model, optimizer, generator = a_run()
    path = save(tmp_path / "run.ckpt.safetensors", model, optimizer, generator)
    before = path.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a checkp")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", disk_full)
    with pytest.raises(InvalidInput, match="no space left on the disk"):
        save(path, model, optimizer, generator, state={**STATE, "step": 3})
    assert path.read_bytes() == before and load_checkpoint(path).state["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # and no temporary file left


def test_checkpoints_live_in_a_hidden_folder_the_style_list_never_shows(tmp_path):
    path = checkpoint_path(tmp_path, "gilded")
    assert path == tmp_path / ".checkpoints" / "gilded.ckpt.safetensors"
    save(path, *a_run())
    assert list_styles(tmp_path) == []


def test_resuming_with_other_settings_is_refused_naming_them_and_a_new_device_is_fine(
        tiny_clip_dir, features_file, tmp_path, one_torch_thread):
    def config(**changes):
        settings = dict(steps=6, resolutions=(32,), hidden=8, depth=2, clip_model=f"local-dir:{tiny_clip_dir}",
                        pretrained=None, cutouts=2, features=str(features_file), eval_every=3, checkpoint_every=2,
                        lr=1e-2, device="cpu")
        return TrainConfig.from_dict({**settings, **changes})

    with pytest.raises(Cancelled):  # cancelled after step 3: a checkpoint stays behind
        train("ink", name="run", config=config(), styles_dir=tmp_path,
              progress=lambda e: not (e.stage == "train" and e.done == 3))
    assert load_checkpoint(checkpoint_path(tmp_path, "run")).state["step"] == 3
    with pytest.raises(Conflict, match=r"different settings: cutouts \(2 -> 3\) \(resume with"):
        train(None, name="run", config=config(cutouts=3), styles_dir=tmp_path, resume=True)
    result = train(None, name="run", config=config(checkpoint_every=5), styles_dir=tmp_path, resume=True)
    assert result.metadata["steps"] == 6 and not checkpoint_path(tmp_path, "run").exists()
