"""Model families behind one registry: smp segmentation models and timm image classifiers.

A family builds a model from ``ModelConfig`` and declares its output: ``masks`` (N, C, H, W) logits or
``labels`` (N, C) logits, so the trial around it never assumes masks. ``model.encoder_weights`` is
None (train from scratch), a hub name such as ``imagenet`` (downloaded by smp/timm, so only where a
hub can be reached), or a local weights file (.safetensors, or .pth/.pt read with weights_only=True);
a hub that cannot be reached is one error line that names the fix.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import segmentation_models_pytorch as smp
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from core.config import ModelConfig
from core.registry import Registry

MASKS, LABELS = "masks", "labels"
# Decoders whose ``decoder_channels`` is one width per encoder stage (the rest take one width or none).
STAGED_DECODERS = {"unet", "unetplusplus", "manet"}


@dataclass(frozen=True)
class Family:
    output: str  # MASKS or LABELS
    check: Callable[[ModelConfig], None]
    build: Callable[[ModelConfig, int, str | None], torch.nn.Module]  # (config, classes, hub weights or None)
    backbone: Callable[[torch.nn.Module], torch.nn.Module]  # the part a local encoder weights file loads into


FAMILIES: Registry[Family] = Registry("model family")


def list_architectures() -> list[str]:
    return sorted(cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values())


def list_encoders() -> list[str]:
    return sorted(smp.encoders.get_encoder_names())


def is_encoder(name: str) -> bool:
    """An smp encoder, or ``tu-<timm model>`` (any timm model with features_only support)."""
    if name.startswith("tu-"):
        return timm.is_model(name[3:].split(".")[0])
    return name in smp.encoders.get_encoder_names()


def _check_smp(config: ModelConfig) -> None:
    arch = config.arch.lower()
    if arch not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise ValueError(f"Unknown model.arch {config.arch!r}. Available options are: {', '.join(list_architectures())}")
    if not is_encoder(config.encoder):
        raise ValueError(
            f"Unknown model.encoder {config.encoder!r}. Available options are: {', '.join(list_encoders())}, "
            "or tu-<name> for any timm model (timm.list_models())"
        )
    if not 3 <= config.encoder_depth <= 5:
        raise ValueError(f"model.encoder_depth must be in 3..5, got {config.encoder_depth}")
    channels = config.decoder_channels
    if channels is not None:
        if arch not in STAGED_DECODERS:
            raise ValueError(f"model.decoder_channels applies to {', '.join(sorted(STAGED_DECODERS))} only, not {config.arch}; remove it")
        if len(channels) != config.encoder_depth or min(channels) < 1:
            raise ValueError(f"model.decoder_channels needs {config.encoder_depth} positive widths (one per encoder stage), got {channels}")


def _decoder_kwargs(config: ModelConfig) -> dict:
    """Unet-like decoders take one channel count per encoder stage; match them to the depth. PSPNet
    upsamples its coarsest features by a fixed 8 unless told the encoder's stride."""
    arch = config.arch.lower()
    if arch == "pspnet":
        return {"upsampling": 2**config.encoder_depth}
    if arch not in STAGED_DECODERS:
        return {}
    return {"decoder_channels": list(config.decoder_channels or [256, 128, 64, 32, 16][: config.encoder_depth])}


def _build_smp(config: ModelConfig, classes: int, hub: str | None) -> torch.nn.Module:
    weights: str | bool | None = hub
    if hub is not None and config.encoder.startswith("tu-"):
        weights = True  # timm encoders take their pretrained tag in the name: tu-<model>.<tag>
    return smp.create_model(
        config.arch,
        encoder_name=config.encoder,
        encoder_weights=weights,
        encoder_depth=config.encoder_depth,
        classes=classes,
        **_decoder_kwargs(config),
    )


def _check_timm(config: ModelConfig) -> None:
    if not timm.is_model(config.encoder.split(".")[0]):
        raise ValueError(f"Unknown timm model {config.encoder!r} for model.family=timm; see timm.list_models()")


def _build_timm(config: ModelConfig, classes: int, hub: str | None) -> torch.nn.Module:
    return timm.create_model(config.encoder, pretrained=hub is not None, num_classes=classes)


FAMILIES.register("smp")(Family(MASKS, _check_smp, _build_smp, lambda model: model.encoder))
FAMILIES.register("timm")(Family(LABELS, _check_timm, _build_timm, lambda model: model))


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.endswith((".safetensors", ".pth", ".pt", ".bin"))


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")


def weights_file(config: ModelConfig) -> Path | None:
    """The local weights file ``model.encoder_weights`` names: the file itself, or for a folder (so a
    space can search encoders) ``<folder>/<encoder>.safetensors`` (or .pth/.pt); None for a hub name."""
    weights = config.encoder_weights
    if weights is None or not _looks_like_path(weights):
        return None
    path = Path(weights).expanduser()
    if path.is_dir():
        for suffix in WEIGHT_SUFFIXES:
            if (path / f"{config.encoder}{suffix}").is_file():
                return path / f"{config.encoder}{suffix}"
        raise ValueError(f"model.encoder_weights: folder {weights} has no {config.encoder}.safetensors (or .pth/.pt); add it, or null to train from scratch")
    if not path.is_file():
        raise ValueError(f"model.encoder_weights: no file at {weights}; name a local weights file, or null to train from scratch")
    check_weights_file(path)
    return path


def check_weights_file(path: Path) -> None:
    """Read a weights file's tensor names, never its tensors nor an unsafe pickle: a file that is not a
    state dict fails here, with its name, and not later inside a trial. .safetensors: its header only;
    .pth/.pt/.bin: torch's weights-only reader (memory-mapped where the file is a zip, as torch saves)."""
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                names = list(handle.keys())
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a pickle protocol note on files torch.save did not write
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
            names = [k for k, v in state.items() if isinstance(v, torch.Tensor)] if isinstance(state, dict) else []
    except Exception as error:  # safetensors, pickle and zip readers each raise their own kinds
        reason = str(error).splitlines()[0][:160] if path.suffix == ".safetensors" else "torch's weights-only reader refused it"
        raise ValueError(
            f"model.encoder_weights: {path} is not a readable {path.suffix} weights file ({reason}); "
            "name a state dict saved with safetensors or torch.save, or null to train from scratch"
        ) from None
    if not names:
        raise ValueError(f"model.encoder_weights: {path} holds no tensors; name the encoder's state dict, or null to train from scratch")


def check_model_config(config: ModelConfig) -> None:
    """Fail before training on an unknown family, architecture or encoder, listing the options."""
    family = get_family(config.family)
    family.check(config)
    weights_file(config)


def build_model(config: ModelConfig, classes: int, load_weights: bool = True) -> torch.nn.Module:
    """A model with ``classes`` sigmoid outputs; ``load_weights=False`` skips pretrained weights (export)."""
    check_model_config(config)
    family = get_family(config.family)
    weights = config.encoder_weights if load_weights else None
    local = weights is not None and _looks_like_path(weights)
    try:
        model = family.build(config, classes, None if local else weights)
    except (OSError, RuntimeError, ConnectionError) as error:  # no hub, no cache: urllib/hf_hub errors
        if weights is None or local:
            raise
        raise ValueError(
            f"model.encoder_weights={weights}: could not fetch pretrained weights for {config.encoder} "
            f"({type(error).__name__}); name a local file with model.encoder_weights=PATH, or null to train from scratch"
        ) from None
    if local:
        load_encoder_weights(family.backbone(model), weights_file(config))  # type: ignore[arg-type]
    return model


def output_kind(config: ModelConfig) -> str:
    return get_family(config.family).output


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


def load_encoder_weights(module: torch.nn.Module, path: Path) -> None:
    """Load a local state dict (.safetensors, or a .pth/.pt read with weights_only=True) into ``module``."""
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not set(state) & set(module.state_dict()):
        raise ValueError(f"{path}: no tensor matches the encoder {type(module).__name__}; expected its state dict")
    module.load_state_dict(state, strict=False)  # smp's ResNet encoders return None here, not the key lists


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


def list_families() -> list[str]:
    return FAMILIES.names()
