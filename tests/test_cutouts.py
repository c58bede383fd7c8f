import math

import pytest
import torch

from backend.model.coords import HEIGHT_SPAN, pixel_coords
from backend.train.cutouts import WIDEST_ASPECT, augment, fixed_views, sample_views, to_images, view_coords

HALF_W, HALF_H = WIDEST_ASPECT * math.pi, math.pi  # the 16:9 canvas


def views(n=64, seed=0, **kwargs):
    return sample_views(n, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_windows_have_mixed_sizes_from_min_scale_to_overscan():
    v = views(64, min_scale=0.25, overscan=1.15)
    scale = v.spans / HEIGHT_SPAN
    assert len(v) == 64 and v.centers.shape == (64, 2)
    assert scale.min() >= 0.25 - 1e-9 and scale.max() <= 1.15 + 1e-9
    details = scale[16:]  # the first quarter are whole-frame views
    assert details.min() < 0.35 and details.max() > 1.0 and len(set(details.tolist())) == 48
    # log-uniform: about as many windows below sqrt(0.25 * 1.15) as above it
    assert 14 < int((details < math.sqrt(0.25 * 1.15)).sum()) < 34


def test_frame_views_are_whole_frames_panned_across_16_9():
    v = views(64, overscan=1.15)
    frames = v.spans[:16] / HEIGHT_SPAN
    assert (frames >= 1.0).all() and (frames <= 1.15 + 1e-9).all() and frames.max() > 1.05
    pan = (WIDEST_ASPECT - 1) * math.pi
    x = v.centers[:16, 0]
    assert x.abs().max() <= pan + 1e-9 and x.min() < -pan / 2 and x.max() > pan / 2


def test_some_windows_reach_beyond_the_canvas_by_the_overscan_margin():
    v = views(64, overscan=1.15)
    reach_x = v.centers[:, 0].abs() + v.spans / 2
    reach_y = v.centers[:, 1].abs() + v.spans / 2
    details = slice(16, None)
    outside = (reach_x > HALF_W + 1e-6) | (reach_y > HALF_H + 1e-6)
    assert outside[details].any() and not outside[details].all()
    assert (reach_x[details] > HALF_W + 1e-6).any() and (reach_y[details] > HALF_H + 1e-6).any()  # both margins
    assert (reach_x[details] <= 1.15 * HALF_W + 1e-6).all() and (reach_y[details] <= 1.15 * HALF_H + 1e-6).all()
    tight = views(64, overscan=1.0, min_scale=0.25)
    inside_x = tight.centers[16:, 0].abs() + tight.spans[16:] / 2 <= HALF_W + 1e-6
    inside_y = tight.centers[16:, 1].abs() + tight.spans[16:] / 2 <= HALF_H + 1e-6
    assert (inside_x & inside_y).all()  # without overscan, details stay on the canvas


def test_views_are_drawn_only_from_the_generator():
    torch.manual_seed(1)
    a = views(8, seed=3)
    torch.manual_seed(2)
    b = views(8, seed=3)
    assert torch.equal(a.centers, b.centers) and torch.equal(a.spans, b.spans)
    c = views(8, seed=4)
    assert not torch.equal(a.centers, c.centers)


def test_view_coords_are_the_renderers_coordinates_of_each_window():
    v = fixed_views()
    coords = view_coords(v, 16)
    assert coords.shape == (len(v), 16 * 16, 3)
    for i in range(len(v)):
        c, s = v.centers[i], float(v.spans[i])
        assert torch.equal(coords[i], pixel_coords(16, 16, center=(float(c[0]), float(c[1])), span=s))
        x, y = coords[i, :, 0], coords[i, :, 1]
        assert x.max() - x.min() == pytest.approx(s * 15 / 16, rel=1e-5)
        assert y.mean() == pytest.approx(float(c[1]), abs=1e-5)


def test_augmentation_changes_pixels_lightly_but_keeps_shapes_and_gradients():
    images = torch.rand(16, 3, 24, 24, requires_grad=True)
    out = augment(images, generator=torch.Generator().manual_seed(0), noise=0.02)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert not torch.allclose(out, images)
    same = (out - images).abs().amax(dim=(1, 2, 3)) < 0.15
    mirrored = (out - images.flip(-1)).abs().amax(dim=(1, 2, 3)) < 0.15
    assert (same | mirrored).all() and same.any() and mirrored.any()  # mirror about half, then light noise
    noise = torch.where(same[:, None, None, None], out - images, out - images.flip(-1))
    assert noise.std().item() == pytest.approx(0.02, rel=0.1)
    out.sum().backward()
    assert torch.equal(images.grad, torch.ones_like(images))  # no clamp, no detach
    again = augment(images, generator=torch.Generator().manual_seed(0), noise=0.02)
    assert torch.equal(out, again)
    clean = augment(images, generator=torch.Generator().manual_seed(0), noise=0.0)
    assert all(torch.equal(clean[i], images[i]) or torch.equal(clean[i], images[i].flip(-1)) for i in range(16))


def test_to_images_drops_alpha_and_keeps_rows():
    colour = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).reshape(2, 16, 4)
    images = to_images(colour, 4)
    assert images.shape == (2, 3, 4, 4)
    assert torch.equal(images[1, :, 2, 3], colour[1, 2 * 4 + 3, :3])


@pytest.mark.usefixtures("one_torch_thread")
def test_a_training_step_sends_all_augmented_cutouts_to_clip_in_one_batch(tiny_clip, features_file, monkeypatch):
    import backend.train.loop as trainer_module
    from backend.train.audio_rows import read_feature_file
    from backend.clip.prompts import parse_prompts
    from backend.model.cppn import CPPNConfig
    from backend.train.run import TrainConfig
    from backend.train.loop import Trainer

    config = TrainConfig(steps=4, resolutions=(32,), model=CPPNConfig(hidden=16, depth=2), cutouts=5, device="cpu",
                         clip_model="unused", pretrained=None)
    trainer = Trainer(config, prompts=parse_prompts("ink"), negatives=[], rows=read_feature_file(features_file),
                      device=torch.device("cpu"), clip=tiny_clip)
    rendered, seen = [], []
    real_render = trainer_module.render_views
    monkeypatch.setattr(trainer_module, "render_views",
                        lambda *a, **k: rendered.append(real_render(*a, **k)) or rendered[-1])
    real_encode = tiny_clip.encode_images
    monkeypatch.setattr(tiny_clip, "encode_images", lambda images: seen.append(images) or real_encode(images))
    trainer.loss(32)
    assert len(seen) == 1 and seen[0].shape == (5, 3, 32, 32)  # one CLIP pass, B = cutouts
    assert len(rendered) == 1 and rendered[0].shape == seen[0].shape
    assert seen[0].requires_grad and seen[0].grad_fn is not None  # no detach before CLIP
    assert not torch.allclose(seen[0], rendered[0])  # augmented
    r, s = rendered[0], seen[0]
    near = torch.minimum((s - r).abs().amax(dim=(1, 2, 3)), (s - r.flip(-1)).abs().amax(dim=(1, 2, 3)))
    assert (near < 0.15).all()  # lightly: each is its render (maybe mirrored) plus a little noise
