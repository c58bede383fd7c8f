"""Training checkpoints: everything a run needs to continue exactly where it stopped.

One safetensors file (never pickle): the network's weights, the best weights so far, Adam's
moments and step counts, and the sampler's random state as a uint8 tensor; the run's JSON
state (step, settings, prompt, history, best score, elapsed time) rides in the header.
Written atomically, so an interrupted write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from backend.atomic import atomic_path
from backend.errors import InvalidInput

STATE_KEY = "audio_cppn_checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    model: dict[str, torch.Tensor]  # the network's state_dict at ``state["step"]``
    best: dict[str, torch.Tensor]  # the best-scoring weights so far
    optimizer: dict  # an Adam state_dict, ready for ``load_state_dict``
    rng: torch.Tensor  # uint8, the sampler generator's state
    state: dict  # JSON: step, settings, prompt, history, best, elapsed


def checkpoint_path(styles_dir: Path, name: str) -> Path:
    """Kept in a hidden folder of the library so listing styles never sees it."""
    return Path(styles_dir) / ".checkpoints" / f"{name}.ckpt.safetensors"


def save_checkpoint(path: Path, *, model: torch.nn.Module, best: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, rng: torch.Tensor, state: dict) -> Path:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best.items()})
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for slot, value in slots.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"adam.{index}.{slot}"] = value
    tensors["rng"] = rng
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {"version": CHECKPOINT_VERSION, "param_groups": opt["param_groups"], "state": state}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={STATE_KEY: json.dumps(header)})
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads(f.metadata()[STATE_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})",
                           fix="delete it and train again without --resume") from None
    if header.get("version") != CHECKPOINT_VERSION:
        raise InvalidInput(f"checkpoint {path} has version {header.get('version')}, expected {CHECKPOINT_VERSION}")
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, index, slot = key.split(".", 2)
            opt_state.setdefault(int(index), {})[slot] = value
    optimizer = {"state": opt_state, "param_groups": header["param_groups"]}
    return Checkpoint(model=model, best=best, optimizer=optimizer, rng=tensors["rng"], state=header["state"])
