import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.render.frame_renderer import FrameRenderer
from backend.train.audio_rows import read_feature_file, spread_rows
from backend.model.cppn import CPPN, CPPNConfig
from backend.errors import InvalidInput
from backend.train.score import score_style
from backend.styles.library import load_style
from backend.train.run import TrainConfig, train
from tests.helpers.tiny_clip import write_tiny_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_clip_dir, features_file):
    folder = tmp_path_factory.mktemp("styles")
    config = TrainConfig(steps=40, resolutions=(32, 64), model=CPPNConfig(hidden=32, depth=3),
                         clip_model=f"local-dir:{tiny_clip_dir}", pretrained=None, cutouts=4, features=str(features_file), eval_every=10, lr=1e-2, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train("ink in water", name="ink", config=config, styles_dir=folder)
    finally:
        torch.set_num_threads(threads)
    return folder


def test_score_averages_frames_spread_over_the_track(trained, tiny_clip, features_file):
    style = load_style("ink", styles_dir=trained)
    result = score_style(style, "ink in water", clip=tiny_clip, audio=str(features_file), n_frames=6)
    assert len(result.per_frame) == len(result.times) == 6
    assert result.similarity == pytest.approx(np.mean(result.per_frame))
    rows = read_feature_file(features_file)
    assert result.times[0] > rows.times[0] and result.times[-1] < rows.times[-1]  # not the silent ends
    assert np.all(np.diff(result.times) > 0) and result.clip == tiny_clip.label
    again = score_style(style, "ink in water", clip=tiny_clip, audio=str(features_file), n_frames=6)
    assert again.per_frame == result.per_frame  # deterministic


def test_training_raises_the_score_of_the_prompt(trained, tiny_clip, features_file):
    style = load_style("ink", styles_dir=trained)
    untrained = CPPN(style.model.config)  # the same seed: the network training started from
    after = score_style(style, "ink in water", clip=tiny_clip, audio=str(features_file), n_frames=8).similarity
    before = score_style(untrained, "ink in water", clip=tiny_clip, audio=str(features_file), n_frames=8).similarity
    assert after > before + 0.005


def test_the_score_judges_the_frames_a_render_makes_at_those_moments_of_the_music(tiny_clip, features_file):
    """What the number means to a user: CLIP's similarity of the very frames the renderer makes at
    those times of the track, music included (the centre square of each, as CLIP crops a frame)."""
    model = CPPN(CPPNConfig(hidden=16, depth=2, seed=3))
    rows = read_feature_file(features_file)
    result = score_style(model, "ink", clip=tiny_clip, audio=rows, n_frames=4)
    times, values = (t.numpy() for t in spread_rows(rows, 4))
    assert result.times == pytest.approx(times.tolist())
    size = tiny_clip.image_size[0] * 2  # the score renders at twice CLIP's input size
    with FrameRenderer(model, width=size, height=size, device="cpu") as renderer:
        with_music, without = renderer.render(times, values), renderer.render(times, np.zeros_like(values))

    def clip_similarity(frames):
        with torch.no_grad():
            images = tiny_clip.encode_images(torch.from_numpy(frames).permute(0, 3, 1, 2))
            text = tiny_clip.encode_text(["ink"])
        return (F.normalize(images, dim=-1) @ F.normalize(text, dim=-1).T)[:, 0].numpy()

    assert np.allclose(result.per_frame, clip_similarity(with_music), rtol=0, atol=1e-4)
    assert np.abs(clip_similarity(with_music) - clip_similarity(without)).max() > 1e-3  # so the music counts


def test_weighted_and_negative_prompts_are_scored(tiny_clip, features_file):
    model = CPPN(CPPNConfig(hidden=16, depth=2, seed=3))
    gold = score_style(model, "gold leaf", clip=tiny_clip, audio=str(features_file), n_frames=2)
    ink = score_style(model, "ink", clip=tiny_clip, audio=str(features_file), n_frames=2)
    both = score_style(model, "ink:1, gold leaf:3", clip=tiny_clip, audio=str(features_file), n_frames=2,
                       negative="a red square")
    assert both.similarity == pytest.approx(0.25 * ink.similarity + 0.75 * gold.similarity, abs=1e-5)
    assert both.negative_similarity is not None and gold.negative_similarity is None


def test_bad_score_requests_are_refused(tiny_clip):
    model = CPPN(CPPNConfig(hidden=16, depth=2))
    with pytest.raises(InvalidInput, match="n_frames must be >= 1, got 0"):
        score_style(model, "ink", clip=tiny_clip, n_frames=0)
    with pytest.raises(InvalidInput, match="prompt is empty"):
        score_style(model, "", clip=tiny_clip)


def test_score_command_uses_the_style_prompt_and_a_second_model(trained, tiny_clip_dir, features_file, tmp_path):
    second = write_tiny_clip(tmp_path / "second", seed=1)
    cmd = [sys.executable, "-m", "backend", "score", "ink", "--styles-dir", str(trained),
           "--clip-model", f"local-dir:{tiny_clip_dir}", "--audio", str(features_file), "--frames", "4",
           "--device", "cpu"]
    out = subprocess.run(cmd + ["--second-clip", f"local-dir:{second}", "--json"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert [r["clip"] for r in results] == [f"local-dir:{tiny_clip_dir}", f"local-dir:{second}"]
    assert results[0]["prompts"] == [{"text": "ink in water", "weight": 1.0}]
    assert len(results[0]["per_frame"]) == 4 and results[0]["similarity"] != results[1]["similarity"]
    table = subprocess.run(cmd + ["--no-second-clip", "--prompt", "gold leaf"], capture_output=True,
                           text=True, timeout=120)
    assert table.returncode == 0 and "'gold leaf'" in table.stdout
    assert re.search(r"tiny_clip\S* +similarity -?0\.\d{4}", table.stdout)
    missing = subprocess.run(cmd[:4] + ["nope", "--styles-dir", str(trained)], capture_output=True, text=True)
    assert missing.returncode == 2 and "no style named 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_score_command_defaults_to_the_clip_the_style_was_trained_with(trained, tiny_clip_dir, features_file):
    cmd = [sys.executable, "-m", "backend", "score", "ink", "--styles-dir", str(trained), "--audio",
           str(features_file), "--frames", "2", "--device", "cpu", "--no-second-clip"]
    out = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [r["clip"] for r in json.loads(out.stdout)] == [f"local-dir:{tiny_clip_dir}"]
    empty = subprocess.run(cmd + ["--prompt", " "], capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and empty.stderr.startswith("error: --prompt is empty")
    assert "Traceback" not in empty.stderr


def test_main_model_fills_in_what_the_user_left_out():
    from argparse import Namespace

    from backend.cli.score_cmd import main_model

    meta = {"clip_model": "ViT-B-16", "pretrained": "laion2b_s34b_b88k"}
    assert main_model(Namespace(clip_model=None, pretrained=None), meta) == ("ViT-B-16", "laion2b_s34b_b88k")
    assert main_model(Namespace(clip_model=None, pretrained="openai"), meta) == ("ViT-B-16", "openai")
    assert main_model(Namespace(clip_model="ViT-L-14", pretrained=None), meta) == ("ViT-L-14", "laion2b_s34b_b79k")
    assert main_model(Namespace(clip_model=None, pretrained=None), {}) == ("ViT-B-32", "laion2b_s34b_b79k")
