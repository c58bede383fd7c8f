import json
import math

import numpy as np
import pytest
import torch

from backend.train.audio_rows import read_feature_file
from backend.model.coords import pixel_coords
from backend.errors import Cancelled, Conflict, InvalidInput, NotFound
from backend.clip.prompts import parse_prompts
from backend.train.score import score_style
from backend.styles.library import list_styles, load_style
from backend.train.run import TrainConfig, train
from backend.train.loop import Trainer
from backend.audio.names import FEATURE_NAMES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny_config(tiny_clip_dir, features_file):
    """A run small enough for CI: 32/48 px cutouts, a 3x16 network, the tiny CLIP."""
    def make(**changes):
        settings = dict(steps=12, resolutions=(32, 48), hidden=16, depth=3, clip_model=f"local-dir:{tiny_clip_dir}",
                        pretrained=None, cutouts=3, features=str(features_file), eval_every=4, lr=1e-2,
                        checkpoint_every=5, device="cpu")
        return TrainConfig.from_dict({**settings, **changes})
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
        trainer = Trainer(TrainConfig.from_dict({**config.to_dict(), "memory_budget_gb": budget_gb}),
                          prompts=parse_prompts("ink in water"), negatives=[], rows=rows,
                          device=torch.device("cpu"), clip=tiny_clip)
        assert (trainer._chunk(32, 4) is None) == (budget_gb is None)
        loss, numbers = trainer.loss(32)
        loss.backward()
        assert numbers["loss"] == pytest.approx(1 - numbers["similarity"])
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters()})
    names = set(grads[0])
    assert {"coord_weight", "time_weight", "first_bias", "out.weight", "out.bias"} <= names
    assert {f"hidden_layers.{i}.weight" for i in range(config.model.depth - 1)} <= names
    for name in names:
        assert torch.isfinite(grads[0][name]).all() and grads[0][name].abs().sum() > 0, name
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-7), name


def test_trained_style_loads_renders_and_records_its_run(tiny_config, tiny_clip_dir, tmp_path):
    config = tiny_config(negative="text, watermark", pretrained="laion2b_s34b_b79k")  # local-dir overrides the tag
    result = train("ink in water:1, gold leaf:0.5", name="gilded", config=config, styles_dir=tmp_path)
    style = load_style("gilded", styles_dir=tmp_path)
    assert style.kind == "trained" and [s.name for s in list_styles(tmp_path)] == ["gilded"]
    meta = style.metadata
    assert meta["prompts"] == [{"text": "ink in water", "weight": 1.0}, {"text": "gold leaf", "weight": 0.5}]
    assert meta["negative"] == "text, watermark" and meta["negatives"][0]["text"] == "text, watermark"
    assert meta["clip_model"] == meta["pretrained"] == meta["settings"]["pretrained"] == f"local-dir:{tiny_clip_dir}"
    assert meta["clip_weights"] == str(tiny_clip_dir / "open_clip_model.safetensors")
    assert meta["steps"] == 12 and meta["seed"] == 0
    assert meta["settings"]["resolutions"] == [32, 48] and meta["settings"]["cutouts"] == 3
    assert meta["device"] == "cpu" and meta["duration_s"] > 0
    assert meta["best_similarity"] == result.best_similarity and meta["final_similarity"] == result.final_similarity
    assert style.model.config.hidden == 16 and style.model.config.depth == 3
    # The style renders a 16:9 frame with the renderer's coordinates: valid colour with structure.
    coords = pixel_coords(64, 36)
    frame = style.model(coords, torch.tensor([3.0]), torch.full((1, len(FEATURE_NAMES)), 0.4))[0]
    assert frame.shape == (64 * 36, 3) and torch.isfinite(frame).all()
    assert frame.min() >= 0 and frame.max() <= 1 and frame.std() > 0.01
    # Side files: preview PNG, history with one entry per step, the curve picture.
    from backend.writers.image import read_display

    preview = read_display(result.preview_path)
    assert result.preview_path == tmp_path / "gilded.png" and preview.shape[:2] == (216, 384)
    history = json.loads((tmp_path / "gilded.history.json").read_text())
    assert [s["step"] for s in history["steps"]] == list(range(1, 13))
    assert {s["resolution"] for s in history["steps"][:6]} == {32} and history["steps"][-1]["resolution"] == 48
    assert all(s["negative_similarity"] is not None for s in history["steps"])
    assert (tmp_path / "gilded.curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / ".checkpoints").exists()  # the checkpoints of steps 5 and 10 are gone, folder too


def test_the_saved_weights_are_the_weights_of_the_best_evaluation(tiny_config, tmp_path, monkeypatch):
    weights = {}  # step -> the network's weights right after that step's evaluation
    evaluate = Trainer.evaluate

    def recording(self):
        entry = evaluate(self)
        weights[self.step] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return entry

    monkeypatch.setattr(Trainer, "evaluate", recording)
    schedule = TrainConfig.lr_at  # climb for 8 steps, then descend: the best is in the middle, not at the end
    monkeypatch.setattr(TrainConfig, "lr_at", lambda self, step: schedule(self, step) * (1 if step < 8 else -1))
    result = train("ink in water", name="best", config=tiny_config(steps=16, eval_every=2), styles_dir=tmp_path)
    history = json.loads(result.history_path.read_text())
    best = max(history["evals"], key=lambda e: e["score"])
    assert result.best_step == best["step"] and result.metadata["best_step"] == best["step"]
    assert 0 < result.best_step < 16 and sorted(weights) == list(range(0, 17, 2))
    saved = load_style("best", styles_dir=tmp_path).model.state_dict()
    assert all(torch.equal(saved[k], weights[result.best_step][k]) for k in saved)
    assert not all(torch.equal(saved[k], weights[16][k]) for k in saved)  # not the final weights


def make_trainer(config, clip, features):
    return Trainer(config, prompts=parse_prompts("ink in water"), negatives=[], rows=read_feature_file(features),
                   device=torch.device("cpu"), clip=clip)


def test_the_optimiser_follows_the_warm_up_and_cosine_schedule(tiny_config, tiny_clip, features_file):
    config = tiny_config(steps=10, resolutions=(32,), warmup_steps=4, lr=1e-2, final_lr_fraction=0.1)
    trainer = make_trainer(config, tiny_clip, features_file)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    lrs = []
    for step in range(10):
        entry = trainer.train_step()
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        assert entry["lr"] == lrs[-1]
        if step == 0:  # Adam's first update moves a weight by lr * g / |g|: at most the lr in force
            moved = max((p.detach() - before[n]).abs().max().item() for n, p in trainer.model.named_parameters())
            assert moved == pytest.approx(config.lr_at(0), rel=1e-3)
    assert lrs == [config.lr_at(s) for s in range(10)]
    # written out: linear warm-up over 4 steps, times a cosine from 1 down to final_lr_fraction
    expected = [1e-2 * min(1, (s + 1) / 4) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 9))) for s in range(10)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert lrs[0] == pytest.approx(1e-2 / 4) and lrs[-1] == pytest.approx(1e-3)


def test_cutouts_follow_the_pyramid_each_with_its_own_time_and_music(tiny_config, tiny_clip, features_file,
                                                                     tmp_path, monkeypatch):
    import backend.train.loop as trainer_module

    batches, clip_inputs = [], []
    render = trainer_module.render_views

    def spy(model, coords, time_s, audio, **kwargs):
        if torch.is_grad_enabled():  # training batches (evaluation runs without gradients)
            batches.append((round(coords.shape[1] ** 0.5), time_s.clone(), audio.clone()))
        return render(model, coords, time_s, audio, **kwargs)

    monkeypatch.setattr(trainer_module, "render_views", spy)
    encode = tiny_clip.encode_images
    monkeypatch.setattr(tiny_clip, "encode_images", lambda images: clip_inputs.append(tuple(images.shape))
                        or encode(images))
    config = tiny_config(steps=12, resolutions=(32, 48), cutouts=4, eval_every=6)
    make_trainer(config, tiny_clip, features_file).run(progress=None, checkpoint_file=tmp_path / "c.safetensors",
                                                        state={})
    assert [size for size, _, _ in batches] == [32] * 6 + [48] * 6  # the documented split: 12 steps, 2 stages
    assert [s for s in clip_inputs if s[0] == 4] == [(4, 3, 32, 32)] * 6 + [(4, 3, 48, 48)] * 6
    assert [s for s in clip_inputs if s[0] != 4] == [(8, 3, 48, 48)] * 3  # evaluations: finest size, steps 0/6/12
    times = torch.cat([t for _, t, _ in batches])
    assert all(len(set(t.tolist())) == 4 for _, t, _ in batches) and len(set(times.tolist())) == 48
    assert times.min() >= 0 and times.max() < config.time_range_s and times.max() > 0.5 * config.time_range_s
    audio = torch.cat([a for _, _, a in batches]).numpy()
    assert len({tuple(r) for r in audio.tolist()}) > 40  # a row per element, not one per batch
    source = read_feature_file(features_file).values
    assert (audio >= source.min(axis=0)).all() and (audio <= source.max(axis=0)).all()


def test_settings_record_absolute_paths_and_the_weights_really_used(tiny_clip_dir, features_file, monkeypatch):
    from backend.train.run import recorded_config

    monkeypatch.chdir(features_file.parent)
    config = recorded_config(TrainConfig(clip_model=f"local-dir:{tiny_clip_dir}", features=features_file.name))
    assert config.features == str(features_file)
    # the default tag does not apply to a local-dir model: the folder is what is recorded, twice
    assert config.clip_model == config.pretrained == f"local-dir:{tiny_clip_dir}"
    assert recorded_config(config) == config


def test_resume_finds_a_relative_features_file_from_another_folder(tiny_config, features_file, tmp_path, monkeypatch):
    monkeypatch.chdir(features_file.parent)
    config = tiny_config(features=features_file.name, steps=8, resolutions=(32,), checkpoint_every=100)
    with pytest.raises(Cancelled):
        train("ink", name="moved", config=config, styles_dir=tmp_path,
              progress=lambda e: not (e.stage == "train" and e.done == 3))
    monkeypatch.chdir(tmp_path)
    result = train(None, name="moved", styles_dir=tmp_path, resume=True)
    assert result.steps == 8 and result.metadata["features"] == str(features_file)
    assert not (tmp_path / ".checkpoints").exists()


def test_a_bad_features_file_fails_before_clip_loads(tiny_config, tmp_path, monkeypatch):
    import backend.train.run as train_module

    monkeypatch.setattr(train_module, "load_clip", lambda *a, **k: pytest.fail("CLIP loaded before the check"))
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 5), np.float32))
    with pytest.raises(InvalidInput, match=rf"must have shape \(frames, {len(FEATURE_NAMES)}\)"):
        train("ink", name="x", config=tiny_config(features=str(bad)), styles_dir=tmp_path)
    with pytest.raises(NotFound, match="audio file not found"):
        train("ink", name="x", config=tiny_config(features=str(tmp_path / "song.wav")), styles_dir=tmp_path)
    noise = tmp_path / "noise.wav"
    noise.write_bytes(b"RIFF not really" * 20)
    with pytest.raises(InvalidInput, match="not a readable audio file"):
        train("ink", name="x", config=tiny_config(features=str(noise)), styles_dir=tmp_path)


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
    with pytest.raises(Conflict, match=r"different settings: lr \(0.01 -> 0.5\) \(resume with"):  # only what changed
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
    with pytest.raises(InvalidInput, match=rf"must have shape \(frames, {len(FEATURE_NAMES)}\)"):
        train("ink", name="x", config=tiny_config(features=str(bad)), styles_dir=tmp_path)
    assert not list(tmp_path.glob("x*"))
