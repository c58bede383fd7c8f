import json

import numpy as np
import pytest
import torch

from backend.audio_sampling import read_feature_file
from backend.coords import pixel_coords
from backend.errors import Cancelled, Conflict, InvalidInput, NotFound
from backend.prompts import parse_prompts
from backend.score import score_style
from backend.styles import list_styles, load_style
from backend.train import TrainConfig, train
from backend.trainer import Trainer
from clip_fixtures import features_file, one_torch_thread, tiny_clip, tiny_clip_dir  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny_config(tiny_clip_dir, features_file):
    """A run small enough for CI: 32/48 px cutouts, a 3x16 network, the tiny CLIP."""
    def make(**changes):
        settings = dict(steps=12, resolutions=(32, 48), hidden=16, depth=3, clip_model=f"local-dir:{tiny_clip_dir}",
                        pretrained=None, cutouts=3, features=str(features_file), eval_every=4, lr=1e-2,
                        checkpoint_every=5, device="cpu")
        return TrainConfig(**{**settings, **changes})
    return make


def test_similarity_to_the_prompt_rises_over_50_steps(tiny_config, tmp_path):
    result = train("ink in water", name="rise", config=tiny_config(steps=50, eval_every=10, resolutions=(32, 64),
                                                                   hidden=32, cutouts=4), styles_dir=tmp_path)
    history = json.loads(result.history_path.read_text())
    evals = [e["similarity"] for e in history["evals"]]
    assert [e["step"] for e in history["evals"]] == [0, 10, 20, 30, 40, 50]
    assert evals[-1] > evals[0] + 0.005
    batch = [s["similarity"] for s in history["steps"]]
    assert np.mean(batch[-10:]) > np.mean(batch[:10])
    assert result.best_similarity == max(evals[1:]) and result.best_similarity > evals[0]


def test_a_gradient_reaches_every_cppn_layer_also_when_views_are_recomputed(tiny_config, tiny_clip, features_file):
    config = tiny_config(cutouts=4)
    rows = read_feature_file(features_file)
    grads = []
    for budget_gb in (None, 1e-6):  # 1e-6 GB forces one view per checkpointed chunk
        trainer = Trainer(TrainConfig(**{**config.to_dict(), "memory_budget_gb": budget_gb}),
                          prompts=parse_prompts("ink in water"), negatives=[], rows=rows,
                          device=torch.device("cpu"), clip=tiny_clip)
        assert (trainer._chunk(32, 4) is None) == (budget_gb is None)
        loss, numbers = trainer.loss(32)
        loss.backward()
        assert numbers["loss"] == pytest.approx(1 - numbers["similarity"])
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters()})
    names = set(grads[0])
    assert {"coord_weight", "time_weight", "first_bias", "out.weight", "out.bias"} <= names
    assert {f"hidden_layers.{i}.weight" for i in range(config.depth - 1)} <= names
    for name in names:
        assert torch.isfinite(grads[0][name]).all() and grads[0][name].abs().sum() > 0, name
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-7), name


def test_trained_style_loads_renders_and_records_its_run(tiny_config, tmp_path):
    config = tiny_config(negative="text, watermark")
    result = train("ink in water:1, gold leaf:0.5", name="gilded", config=config, styles_dir=tmp_path)
    style = load_style("gilded", styles_dir=tmp_path)
    assert style.kind == "trained" and [s.name for s in list_styles(tmp_path)] == ["gilded"]
    meta = style.metadata
    assert meta["prompts"] == [{"text": "ink in water", "weight": 1.0}, {"text": "gold leaf", "weight": 0.5}]
    assert meta["negative"] == "text, watermark" and meta["negatives"][0]["text"] == "text, watermark"
    assert meta["clip_model"].startswith("local-dir:") and meta["steps"] == 12 and meta["seed"] == 0
    assert meta["settings"]["resolutions"] == [32, 48] and meta["settings"]["cutouts"] == 3
    assert meta["device"] == "cpu" and meta["duration_s"] > 0
    assert meta["best_similarity"] == result.best_similarity and meta["final_similarity"] == result.final_similarity
    assert style.model.config.hidden == 16 and style.model.config.depth == 3
    # The style renders a 16:9 frame with the renderer's coordinates: valid colour with structure.
    coords = pixel_coords(64, 36)
    frame = style.model(coords, torch.tensor([3.0]), torch.full((1, 24), 0.4))[0]
    assert frame.shape == (64 * 36, 3) and torch.isfinite(frame).all()
    assert frame.min() >= 0 and frame.max() <= 1 and frame.std() > 0.01
    # Side files: preview PNG, history with one entry per step, the curve picture.
    from backend.image_writers import read_display

    preview = read_display(result.preview_path)
    assert result.preview_path == tmp_path / "gilded.png" and preview.shape[:2] == (216, 384)
    history = json.loads((tmp_path / "gilded.history.json").read_text())
    assert [s["step"] for s in history["steps"]] == list(range(1, 13))
    assert {s["resolution"] for s in history["steps"][:6]} == {32} and history["steps"][-1]["resolution"] == 48
    assert all(s["negative_similarity"] is not None for s in history["steps"])
    assert (tmp_path / "gilded.curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / ".checkpoints" / "gilded.ckpt.safetensors").exists()


def test_the_saved_weights_are_the_best_evaluated_ones(tiny_config, tmp_path):
    result = train("ink in water", name="best", config=tiny_config(steps=16, eval_every=2), styles_dir=tmp_path)
    history = json.loads(result.history_path.read_text())
    best = max(history["evals"], key=lambda e: e["score"])
    assert result.best_step == best["step"] and result.metadata["best_step"] == best["step"]


def test_cancel_then_resume_gives_exactly_the_uninterrupted_run(tiny_config, tmp_path):
    whole = train("ink in water", name="whole", config=tiny_config(), styles_dir=tmp_path)

    def stop_at_7(event):
        return not (event.stage == "train" and event.done == 7)

    with pytest.raises(Cancelled):
        train("ink in water", name="parts", config=tiny_config(), styles_dir=tmp_path, progress=stop_at_7)
    assert not (tmp_path / "parts.safetensors").exists()  # nothing half-written
    assert (tmp_path / ".checkpoints" / "parts.ckpt.safetensors").is_file()
    with pytest.raises(Conflict, match="interrupted run of 'parts' exists"):
        train("ink in water", name="parts", config=tiny_config(), styles_dir=tmp_path)
    with pytest.raises(Conflict, match="trained on 'ink in water', not 'gold'"):
        train("gold", name="parts", styles_dir=tmp_path, resume=True)
    with pytest.raises(Conflict, match=r"lr \(0.01 -> 0.5\)"):
        train(None, name="parts", config=tiny_config(lr=0.5), styles_dir=tmp_path, resume=True)
    steps_seen = []
    parts = train(None, name="parts", styles_dir=tmp_path, resume=True,
                  progress=lambda e: steps_seen.append(e.done) if e.stage == "train" else None)
    assert steps_seen == list(range(8, 13))  # continued after step 7, not from the start
    a = load_style("whole", styles_dir=tmp_path).model.state_dict()
    b = load_style("parts", styles_dir=tmp_path).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    whole_history = json.loads(whole.history_path.read_text())
    parts_history = json.loads(parts.history_path.read_text())
    assert whole_history["steps"] == parts_history["steps"] and whole_history["evals"] == parts_history["evals"]
    assert not (tmp_path / ".checkpoints" / "parts.ckpt.safetensors").exists()
    with pytest.raises(NotFound, match="no interrupted run of 'parts'"):
        train(None, name="parts", styles_dir=tmp_path, resume=True)


def test_a_negative_prompt_lowers_similarity_to_the_negative_text(tiny_config, tiny_clip, features_file, tmp_path):
    similarity = {}
    for weight in (0.0, 2.0):
        config = tiny_config(steps=30, negative="a red square", negative_weight=weight, eval_every=10)
        train("ink in water", name=f"neg{weight:g}", config=config, styles_dir=tmp_path)
        style = load_style(f"neg{weight:g}", styles_dir=tmp_path)
        similarity[weight] = score_style(style, "a red square", clip=tiny_clip, audio=str(features_file)).similarity
    assert similarity[2.0] < similarity[0.0] - 0.02


def test_existing_style_is_not_replaced_without_overwrite(tiny_config, tmp_path):
    train("ink", name="taken", config=tiny_config(steps=2, resolutions=(32,)), styles_dir=tmp_path)
    with pytest.raises(Conflict, match="style 'taken' already exists"):
        train("ink", name="taken", config=tiny_config(steps=2, resolutions=(32,)), styles_dir=tmp_path)
    result = train("gold", name="taken", config=tiny_config(steps=2, resolutions=(32,)), styles_dir=tmp_path,
                   overwrite=True)
    assert result.metadata["prompt"] == "gold"


@pytest.mark.parametrize("changes, message", [
    ({"steps": 0}, "steps must be an integer >= 1, got 0"),
    ({"steps": 1}, "steps must be >= the number of resolutions"),
    ({"resolutions": ()}, "resolutions must be 1\\+ sizes"),
    ({"resolutions": (4096,)}, "from 8 to 2048"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"cutouts": 0}, "cutouts must be an integer >= 1"),
    ({"negative_weight": -1.0}, "negative_weight must be a finite number >= 0"),
])
def test_bad_settings_are_refused_before_any_work(changes, message):
    with pytest.raises(InvalidInput, match=message):
        TrainConfig(**changes)


def test_stages_split_steps_and_the_learning_rate_warms_then_decays():
    config = TrainConfig(steps=801, resolutions=(256, 512), lr=1e-3, warmup_steps=25, final_lr_fraction=0.1)
    assert config.stage_steps() == [401, 400]
    assert config.resolution_at(400) == 256 and config.resolution_at(401) == 512
    lrs = [config.lr_at(s) for s in range(801)]
    assert lrs[0] == pytest.approx(1e-3 / 25) and max(lrs) <= 1e-3
    assert lrs[-1] == pytest.approx(1e-4) and lrs[24] > lrs[400] > lrs[-1]


def test_bad_input_fails_fast_with_clear_messages(tiny_config, tmp_path):
    with pytest.raises(InvalidInput, match="prompt is empty"):
        train("  ", name="x", config=tiny_config(), styles_dir=tmp_path)
    with pytest.raises(InvalidInput, match="style name"):
        train("ink", name="../x", config=tiny_config(), styles_dir=tmp_path)
    with pytest.raises(NotFound, match="features file not found"):
        train("ink", name="x", config=tiny_config(features=str(tmp_path / "none.npz")), styles_dir=tmp_path)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 5), np.float32))
    with pytest.raises(InvalidInput, match=r"must have shape \(frames, 24\)"):
        train("ink", name="x", config=tiny_config(features=str(bad)), styles_dir=tmp_path)
    assert not list(tmp_path.glob("x*"))
