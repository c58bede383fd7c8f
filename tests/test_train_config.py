"""Training settings: any network (CPPNConfig) can be trained, by flat names shared by the command line,
the service, checkpoints and style metadata; checkpoints saved before that still resume."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from backend.cli import build_parser
from backend.cli.train_cmd import CONFIG_OPTIONS, given_settings
from backend.errors import Cancelled, InvalidInput
from backend.model.config import CPPNConfig
from backend.styles.library import load_style
from backend.train.checkpoint import STATE_KEY, checkpoint_path
from backend.train.config import FLAT_NAMES, MODEL_NAMES, TrainConfig
from backend.train.run import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny(tiny_clip_dir, features_file):
    def make(**changes):
        return TrainConfig.from_dict({"steps": 6, "resolutions": (32,), "hidden": 16, "depth": 2, "cutouts": 2,
                                      "clip_model": f"local-dir:{tiny_clip_dir}", "pretrained": None,
                                      "features": str(features_file), "eval_every": 3, "checkpoint_every": 2,
                                      "device": "cpu", **changes})
    return make


def test_flat_settings_name_every_training_and_network_setting_and_round_trip():
    assert set(MODEL_NAMES) <= set(FLAT_NAMES) and "model" not in FLAT_NAMES
    assert {"steps", "resolutions", "hidden", "depth", "seed", "first_omega", "time_periods", "lr"} <= set(FLAT_NAMES)
    config = TrainConfig.from_dict({"hidden": 32, "first_omega": 3.0, "time_periods": [10, 20], "seed": 5, "lr": 0.01})
    assert config.model == CPPNConfig(hidden=32, first_omega=3.0, time_periods=(10.0, 20.0), seed=5)
    assert config.seed == 5 and config.lr == 0.01
    flat = config.to_dict()
    assert list(flat) == list(FLAT_NAMES) and flat["time_periods"] == [10.0, 20.0]
    assert json.loads(json.dumps(flat)) == flat and TrainConfig.from_dict(flat) == config


def test_bad_flat_settings_are_refused_with_the_reason():
    with pytest.raises(InvalidInput, match=r"unknown training settings \['width'\]; known: steps, resolutions"):
        TrainConfig.from_dict({"width": 3})
    with pytest.raises(InvalidInput, match="hidden must be 1-2048"):
        TrainConfig.from_dict({"hidden": 0})
    with pytest.raises(InvalidInput, match="time periods must be > 0 seconds"):
        TrainConfig.from_dict({"time_periods": [0]})
    with pytest.raises(InvalidInput, match="device must be one of"):
        TrainConfig.from_dict({"device": "gpu"})


def test_a_run_trains_the_network_it_is_given(tiny, tmp_path):
    result = train("ink", name="fine", config=tiny(first_omega=4.0, time_periods=(7.0, 13.0), seed=3),
                   styles_dir=tmp_path)
    style = load_style("fine", styles_dir=tmp_path)
    assert style.model.config == CPPNConfig(hidden=16, depth=2, first_omega=4.0, time_periods=(7.0, 13.0), seed=3)
    settings = result.metadata["settings"]
    assert (settings["first_omega"], settings["time_periods"], settings["seed"]) == (4.0, [7.0, 13.0], 3)


def test_a_checkpoint_saved_before_every_network_setting_was_recorded_still_resumes(tiny, tmp_path):
    whole = train("ink", name="whole", config=tiny(), styles_dir=tmp_path)
    with pytest.raises(Cancelled):
        train("ink", name="old", config=tiny(), styles_dir=tmp_path,
              progress=lambda e: not (e.stage == "train" and e.done == 3))
    path = checkpoint_path(tmp_path, "old")
    with safe_open(str(path), framework="pt") as f:  # rewrite it as older versions saved it
        header = json.loads(f.metadata()[STATE_KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    old_names = {"hidden", "depth", "seed"}
    settings = header["state"]["settings"]
    header["state"]["settings"] = {k: v for k, v in settings.items() if k in old_names or k not in MODEL_NAMES}
    save_file(tensors, str(path), metadata={STATE_KEY: json.dumps(header)})

    resumed = train(None, name="old", styles_dir=tmp_path, resume=True)
    assert resumed.steps == 6 and resumed.metadata["settings"] == whole.metadata["settings"]
    a = load_style("whole", styles_dir=tmp_path).model.state_dict()
    b = load_style("old", styles_dir=tmp_path).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_command_line_sets_network_settings_and_states_the_real_defaults(capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "ink", "--name", "x", "--hidden", "16", "--first-omega", "2.5",
                              "--time-periods", "10,20", "--time-omega", "0.5", "--seed", "4"])
    config = TrainConfig.from_dict(given_settings(args))
    assert config.model == CPPNConfig(hidden=16, first_omega=2.5, time_periods=(10.0, 20.0), time_omega=0.5, seed=4)
    assert set(CONFIG_OPTIONS) <= set(FLAT_NAMES)

    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = TrainConfig()
    for stated in (f"(default {defaults.steps})", "(default 256,512)", f"(default {defaults.lr:g})",
                   f"(default {defaults.model.hidden})", f"(default {defaults.model.depth})",
                   f"(default {defaults.negative_weight:g})", f"(default {defaults.cutouts})",
                   f"(default {defaults.checkpoint_every})", f"(default {defaults.eval_every})",
                   f"(default {defaults.model.first_omega:g})", "(default 29,71)"):
        assert stated in text, stated
