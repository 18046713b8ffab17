"""Segmentation models from a trial's config: segmentation-models-pytorch architectures and encoders.

``encoder_weights`` is None (train from scratch) or a local file that the user names; a hub name
such as "imagenet" is handed to smp, which downloads it, so use it only where a hub can be reached.
"""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from safetensors.torch import load_file, save_file

from trainables.config import ModelConfig


def list_architectures() -> list[str]:
    return sorted(cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values())


def list_encoders() -> list[str]:
    return sorted(smp.encoders.get_encoder_names())


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.endswith((".safetensors", ".pth", ".pt", ".bin"))


def check_model_config(config: ModelConfig) -> None:
    """Fail before training on an unknown architecture or encoder, listing the options."""
    if config.arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise ValueError(f"Unknown model.arch {config.arch!r}. Available options are: {', '.join(list_architectures())}")
    if config.encoder not in smp.encoders.get_encoder_names():
        raise ValueError(f"Unknown model.encoder {config.encoder!r}. Available options are: {', '.join(list_encoders())}")
    weights = config.encoder_weights
    if weights is not None and _looks_like_path(weights) and not Path(weights).expanduser().is_file():
        raise ValueError(f"model.encoder_weights: no file at {weights}; name a local weights file, or null to train from scratch")
    if not 3 <= config.encoder_depth <= 5:
        raise ValueError(f"model.encoder_depth must be in 3..5, got {config.encoder_depth}")


def _decoder_kwargs(config: ModelConfig) -> dict:
    """Unet-like decoders take one channel count per encoder stage; match them to the depth."""
    if config.arch.lower() in {"unet", "unetplusplus"}:
        return {"decoder_channels": [256, 128, 64, 32, 16][: config.encoder_depth]}
    return {}


def build_model(config: ModelConfig, classes: int, load_weights: bool = True) -> torch.nn.Module:
    """A model with ``classes`` sigmoid channels; ``load_weights=False`` skips pretrained weights (export)."""
    check_model_config(config)
    weights = config.encoder_weights if load_weights else None
    local = weights is not None and Path(weights).expanduser().exists()
    model = smp.create_model(
        config.arch,
        encoder_name=config.encoder,
        encoder_weights=None if local else weights,
        encoder_depth=config.encoder_depth,
        classes=classes,
        **_decoder_kwargs(config),
    )
    if local:
        load_encoder_weights(model, Path(weights).expanduser())
    return model


@torch.no_grad()
def check_output_size(model: torch.nn.Module, config: ModelConfig, size: tuple[int, int]) -> None:
    """One forward pass on zeros: the masks must come out at the input's size (not every
    architecture supports every encoder depth, e.g. FPN needs 5 stages)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = model(torch.zeros(1, 3, *size, device=device))
    model.train(was_training)
    if tuple(out.shape[-2:]) != tuple(size):
        raise ValueError(
            f"model.arch {config.arch} with model.encoder_depth {config.encoder_depth} gives "
            f"{out.shape[-2]}x{out.shape[-1]} masks for {size[0]}x{size[1]} images; use model.encoder_depth 5"
        )


def load_encoder_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a local encoder state dict (.safetensors, or a .pth/.pt read with weights_only=True)."""
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    missing, _ = model.encoder.load_state_dict(state, strict=False)
    if len(missing) == len(model.encoder.state_dict()):
        raise ValueError(f"{path}: no tensor matches the encoder {type(model.encoder).__name__}; expected its state dict")


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Weights only, as safetensors: never a pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def load_weights(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    model.load_state_dict(load_file(str(path)))
    return model
