import json
import socket
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from backend.clip.compat import import_open_clip
from backend.clip.models import find_cached_model, load_clip, resolve_weights
from backend.errors import InvalidInput, NotFound
from tests.helpers.tiny_clip import TINY_CLIP_CONFIG

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fake_hf_cache(root, repo: str, filename: str, payload: bytes = b"PK\x03\x04weights"):
    """The layout huggingface_hub leaves after a download: refs/main -> snapshots/<rev>/<file>."""
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    snapshot = folder / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(payload)
    return snapshot / filename


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.cache/clip for URL-hosted weights
    return cache


def test_local_dir_model_has_its_preprocessing_and_unit_embeddings(tiny_clip):
    assert tiny_clip.image_size == (64, 64)
    assert torch.allclose(tiny_clip.mean, torch.tensor([0.48145466, 0.4578275, 0.40821073]))
    text = tiny_clip.encode_text(["ink in water", "gold leaf"])
    assert text.shape == (2, TINY_CLIP_CONFIG["embed_dim"])
    assert torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not any(p.requires_grad for p in tiny_clip.model.parameters())


def test_image_encoding_resizes_and_normalises_differentiably(tiny_clip):
    images = torch.rand(3, 3, 128, 128, requires_grad=True)
    embedded = tiny_clip.encode_images(images)
    # The same computation written out: antialiased resize to CLIP's input, then the model's mean/std.
    small = F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    manual = tiny_clip.model.encode_image((small - tiny_clip.mean[:, None, None]) / tiny_clip.std[:, None, None])
    assert torch.allclose(embedded, F.normalize(manual, dim=-1), atol=1e-5)
    embedded.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_weights_file_path_loads_the_same_weights_as_its_folder(tiny_clip_dir, tiny_clip, tmp_path):
    open_clip = import_open_clip()
    (tmp_path / "audio-cppn-tiny.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(tmp_path / "audio-cppn-tiny.json")
    by_path = load_clip("audio-cppn-tiny", str(tiny_clip_dir / "open_clip_model.safetensors"))
    assert by_path.pretrained.endswith("open_clip_model.safetensors")
    texts = ["neon rain", "ink"]
    assert torch.allclose(by_path.encode_text(texts), tiny_clip.encode_text(texts), atol=1e-6)
    random = load_clip("audio-cppn-tiny", "random")
    assert random.pretrained == "random"
    assert not torch.allclose(random.encode_text(texts), tiny_clip.encode_text(texts), atol=1e-3)


def _register(tmp_path, name: str, config: dict) -> str:
    (tmp_path / f"{name}.json").write_text(json.dumps(config))
    import_open_clip().add_model_config(tmp_path / f"{name}.json")
    return name


@pytest.mark.parametrize("name, change", [
    ("audio-cppn-embed48", {"embed_dim": 48}),  # open_clip: RuntimeError (size mismatch)
    ("audio-cppn-text96", {"text_cfg": {**TINY_CLIP_CONFIG["text_cfg"], "width": 96}}),  # AssertionError
])
def test_weights_for_another_architecture_are_refused_clearly(tiny_clip_dir, tmp_path, name, change):
    model = _register(tmp_path, name, {**TINY_CLIP_CONFIG, **change})
    weights = tiny_clip_dir / "open_clip_model.safetensors"
    with pytest.raises(InvalidInput) as info:
        load_clip(model, str(weights))
    text = str(info.value)
    assert f"CLIP weights file {weights} does not fit the model {name}" in text and "\n" not in text


class _Touch:
    """Unpickling this runs code (creates a file): what torch.load must never do to a user's file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pickled_files_are_loaded_safely_and_non_weights_are_refused(tmp_path):
    model = _register(tmp_path, "audio-cppn-tiny-pickles", TINY_CLIP_CONFIG)
    listing = tmp_path / "list.bin"
    torch.save([1, 2, 3], listing)
    with pytest.raises(InvalidInput, match=f"CLIP weights file {listing} does not fit the model {model}"):
        load_clip(model, str(listing))
    marker = tmp_path / "code-ran"
    hostile = tmp_path / "hostile.pt"
    torch.save({"visual.proj": _Touch(marker)}, hostile)
    with pytest.raises(InvalidInput, match="pickled objects that are not plain weights; refused to unpickle"):
        load_clip(model, str(hostile))
    assert not marker.exists()  # weights_only=True: the object was never rebuilt


def test_local_dir_picks_the_file_open_clips_folder_loader_picks(tmp_path):
    from backend.clip.models import find_local_weights

    _find_checkpoint_in_dir = import_open_clip().factory._find_checkpoint_in_dir

    layouts = [["a.pt"], ["b.pth", "a.bin"], ["z.safetensors", "a.bin"], ["model.pth", "x.safetensors"],
               ["pytorch_model.bin", "open_clip_pytorch_model.bin", "model.safetensors"], ["b.bin", "a.bin", "c.pt"]]
    for i, names in enumerate(layouts):
        folder = tmp_path / f"layout{i}"
        folder.mkdir()
        for n in names:
            (folder / n).write_bytes(b"x")
        theirs = _find_checkpoint_in_dir(folder)
        ours = find_local_weights(folder)
        assert (None if ours is None else str(ours)) == theirs, names


def test_local_dir_with_only_a_pt_file_fails_instead_of_training_random_weights(tiny_clip_dir, tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((tiny_clip_dir / "open_clip_config.json").read_text())
    from safetensors.torch import load_file

    torch.save(load_file(tiny_clip_dir / "open_clip_model.safetensors"), folder / "weights.pt")
    with pytest.raises(NotFound, match=r"no CLIP weights in .*\*\.safetensors, \*\.bin or \*\.pth.*weights\.pt"):
        load_clip(f"local-dir:{folder}", None)
    (folder / "weights.pt").rename(folder / "weights.bin")  # what the message suggests
    clip = load_clip(f"local-dir:{folder}", None)
    assert clip.weights == str(folder / "weights.bin") and clip.pretrained == f"local-dir:{folder}"
    reference = load_clip(f"local-dir:{tiny_clip_dir}", None)
    assert torch.allclose(clip.encode_text(["ink"]), reference.encode_text(["ink"]), atol=1e-6)


def test_missing_cached_tag_fails_at_once_naming_file_cache_and_alternative(empty_hf_cache, monkeypatch):
    """At once: no Hub round trip (the prototype retried for 46 s), so nothing may touch the network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # a real user's shell: the Hub "online"
    attempts = []

    def tripped(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", tripped)
    monkeypatch.setattr(socket.socket, "connect", tripped)
    with pytest.raises(NotFound) as info:
        load_clip("ViT-B-32", "laion2b_s34b_b79k")
    assert attempts == []
    text = str(info.value)
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_pytorch_model.bin" in text
    assert str(empty_hf_cache) in text and "--pretrained PATH" in text


def test_cached_tag_is_found_in_the_hugging_face_cache(empty_hf_cache):
    weights = fake_hf_cache(empty_hf_cache, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors")
    source = resolve_weights("ViT-B-32", "laion2b_s34b_b79k")
    assert source.weights == str(weights) and source.label == "laion2b_s34b_b79k" and not source.quick_gelu
    openai = fake_hf_cache(empty_hf_cache, "timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin")
    source = resolve_weights("ViT-B-32", "openai")
    assert source.weights == str(openai) and source.quick_gelu  # OpenAI weights need QuickGELU


def test_second_opinion_is_the_first_cached_other_model(empty_hf_cache):
    assert find_cached_model() is None
    fake_hf_cache(empty_hf_cache, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_pytorch_model.bin")
    assert find_cached_model() == ("ViT-B-32", "laion2b_s34b_b79k")
    assert find_cached_model(exclude=("ViT-B-32", "laion2b_s34b_b79k")) is None
    fake_hf_cache(empty_hf_cache, "laion/CLIP-ViT-B-16-laion2B-s34B-b88K", "open_clip_pytorch_model.bin")
    assert find_cached_model(exclude=("ViT-B-32", "laion2b_s34b_b79k")) == ("ViT-B-16", "laion2b_s34b_b88k")


def test_bad_names_tags_and_files_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInput, match="unknown CLIP model 'ViT-Q-99'"):
        resolve_weights("ViT-Q-99", "random")
    with pytest.raises(InvalidInput, match="CLIP model name is empty"):
        resolve_weights("", "random")
    with pytest.raises(InvalidInput, match="unknown pretrained tag 'nope' for ViT-B-32; known tags: openai"):
        resolve_weights("ViT-B-32", "nope")
    with pytest.raises(NotFound, match="weights file not found"):
        resolve_weights("ViT-B-32", str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InvalidInput, match="not a PyTorch or safetensors weights file"):
        resolve_weights("ViT-B-32", str(junk))
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInput, match="is empty"):
        resolve_weights("ViT-B-32", str(empty))


def test_local_dir_problems_are_named(tiny_clip_dir, tmp_path):
    with pytest.raises(NotFound, match="CLIP folder not found"):
        resolve_weights(f"local-dir:{tmp_path / 'nowhere'}", None)
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((tiny_clip_dir / "open_clip_config.json").read_text())
    with pytest.raises(NotFound, match="no CLIP weights in"):
        resolve_weights("ViT-B-32", f"local-dir:{folder}")
    cut = (tiny_clip_dir / "open_clip_model.safetensors").read_bytes()[:-1000]
    (folder / "open_clip_model.safetensors").write_bytes(cut)
    with pytest.raises(InvalidInput, match="not a valid safetensors file"):
        resolve_weights(f"local-dir:{folder}", None)
    (folder / "open_clip_config.json").write_text("{}")
    with pytest.raises(InvalidInput, match="not a usable open_clip config"):
        resolve_weights(f"local-dir:{folder}", None)
