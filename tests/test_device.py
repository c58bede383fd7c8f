"""--device: one rule for render, train and score; cuda:N means GPU N, and an absent device is a clear error.

A machine without a GPU cannot show GPU 1 at work, so the GPU side is simulated where it must be:
torch is told N GPUs are visible, and the renderer's FP16 evaluator is asked which device it was
given while it computes on the CPU. Everything else (spelling, errors, what the render reports
and records) is the real code path.
"""

import json

import pytest
import torch

import backend.render.frame_renderer as frame_renderer
from backend.cli import build_parser, main
from backend.errors import DeviceUnavailable, InvalidInput
from backend.model.cppn import CPPN, CPPNConfig
from backend.model.device import RENDER_KINDS, check_device_name, resolve_device
from backend.render.frame_renderer import FrameRenderer, HalfEvaluator
from backend.styles.library import save_style
from tests.helpers.signals import pulse_train, write_audio


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("device")
    y, _ = pulse_train(120, sr=22050, duration=0.5)
    audio = write_audio(folder / "beat.wav", y, 22050)
    style = save_style(CPPN(CPPNConfig(seed=2, hidden=8, depth=2)), folder / "tiny.safetensors",
                       name="tiny", kind="procedural")
    return audio, style


def test_device_names_are_normalised_and_misspellings_refused():
    assert check_device_name(" CUDA:1 ") == "cuda:1"
    assert check_device_name(None) == "auto"
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert check_device_name(name) == name
    for bad in ("tpu", "gpu0", "cuda:", "cuda:x", "cuda:-1", "cpu:0", ""):
        with pytest.raises(InvalidInput, match="device must be one of auto, cpu, cuda, cuda:N, mps"):
            check_device_name(bad)
    with pytest.raises(InvalidInput, match="device must be one of auto, cpu, cuda, cuda:N, got 'mps'"):
        check_device_name("mps", RENDER_KINDS)  # the renderer has CPU and CUDA paths only


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_a_clear_error(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(DeviceUnavailable, match=f"--device {name} was requested but"):
            resolve_device(name)


def test_cuda_n_names_gpu_n_and_a_missing_gpu_is_a_clear_error(two_gpus):
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")  # the current GPU
    assert resolve_device("auto").type == "cuda"
    with pytest.raises(DeviceUnavailable, match=r"--device cuda:2 was requested but only 2 GPU\(s\) are visible"):
        resolve_device("cuda:2")


def test_a_render_on_cuda_1_computes_on_gpu_1_and_reports_it(files, tmp_path, two_gpus, monkeypatch, capsys):
    given = []

    class OnTheCPU(HalfEvaluator):  # the FP16 path, computing on the CPU, remembering where it was sent
        def __init__(self, model, *, device, **kwargs):
            given.append(device)
            super().__init__(model, device="cpu", **kwargs)

    monkeypatch.setattr(frame_renderer, "HalfEvaluator", OnTheCPU)
    audio, style = files
    out = tmp_path / "frames"
    code = main(["render", str(audio), "--style", str(style), "-o", str(out), "--size", "32x18",
                 "--duration", "0.2", "--device", "cuda:1", "-q"])
    assert code == 0
    assert given == [torch.device("cuda", 1)]
    assert "on cuda:1 (fp16)" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["device"] == "cuda:1"


def test_renderer_refuses_a_device_it_has_no_path_for(no_gpu):
    model = CPPN(CPPNConfig(hidden=8, depth=1))
    with pytest.raises(InvalidInput, match="got 'mps'"):
        FrameRenderer(model, width=8, height=8, device="mps")
    with pytest.raises(DeviceUnavailable, match="--device cuda:1 was requested"):
        FrameRenderer(model, width=8, height=8, device="cuda:1")
    with FrameRenderer(model, width=8, height=8, device="auto") as renderer:
        assert (renderer.device, renderer.precision) == ("cpu", "fp32")


def test_cli_takes_cuda_n_everywhere_and_refuses_misspellings_while_parsing(files, tmp_path, no_gpu, capsys):
    parser = build_parser()
    audio, style = files
    for argv in (["render", "a.wav", "-o", "out"], ["demo"], ["train", "--name", "x"], ["score", "ink"]):
        assert parser.parse_args(argv + ["--device", "cuda:1"]).device == "cuda:1"
    assert parser.parse_args(["train", "--name", "x", "--device", "mps"]).device == "mps"

    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(audio), "-o", str(tmp_path / "o"), "--device", "mps"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: argument --device: device must be one of auto, cpu, cuda, cuda:N")

    out = tmp_path / "never"
    code = main(["render", str(audio), "--style", str(style), "-o", str(out), "--device", "cuda:1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: --device cuda:1 was requested but") and "fix: use --device cpu" in err
    assert not out.exists()  # nothing half-made
