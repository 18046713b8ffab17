"""Every registered model family and every smp architecture builds and runs forward on a tiny input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.config import ModelConfig
from core.models import (
    LABELS,
    MASKS,
    build_model,
    check_model_config,
    is_encoder,
    list_architectures,
    list_families,
    output_kind,
)

# (encoder, depth, side): the smallest input each decoder accepts at a depth that keeps it fast.
SETTINGS = {
    "DPT": ("tu-test_vit", 4, 64),  # DPT takes timm vision transformers only
    "PAN": ("resnet18", 5, 128),  # its pyramid attention pools to 1/256 of the input side
}


@pytest.mark.parametrize("arch", list_architectures())
def test_every_architecture_builds_and_gives_masks_at_the_input_size(arch: str) -> None:
    torch.manual_seed(0)
    encoder, depth, side = SETTINGS.get(arch, ("resnet18", 5, 64))
    model = build_model(ModelConfig(arch=arch, encoder=encoder, encoder_depth=depth), classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, side, side))
    assert out.shape == (1, 3, side, side)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("encoder", ["tu-test_resnet", "tu-test_efficientnet", "tu-resnet10t"])
def test_timm_universal_encoders_are_accepted(encoder: str) -> None:
    assert is_encoder(encoder)
    model = build_model(ModelConfig(arch="Unet", encoder=encoder, encoder_depth=3), classes=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_unknown_names_list_the_options() -> None:
    with pytest.raises(ValueError, match=r"Unknown model\.encoder 'tu-no_such_net'.*or tu-<name> for any timm model"):
        check_model_config(ModelConfig(encoder="tu-no_such_net"))
    with pytest.raises(ValueError, match=r"Unknown model\.arch 'Unet3'. Available options are: .*UPerNet"):
        check_model_config(ModelConfig(arch="Unet3"))
    with pytest.raises(ValueError, match=r"Unknown model family 'keras'. Available options are: smp, timm"):
        check_model_config(ModelConfig(family="keras"))
    with pytest.raises(ValueError, match=r"model\.decoder_channels applies to manet, unet, unetplusplus only, not FPN"):
        check_model_config(ModelConfig(arch="FPN", decoder_channels=[8, 8, 8, 8, 8]))


def test_families_declare_their_output() -> None:
    assert list_families() == ["smp", "timm"]
    assert output_kind(ModelConfig()) == MASKS
    config = ModelConfig(family="timm", encoder="test_resnet")
    assert output_kind(config) == LABELS
    model = build_model(config, classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_decoder_channels_set_the_unet_widths() -> None:
    model = build_model(ModelConfig(encoder_depth=3, decoder_channels=[32, 16, 8]), classes=1)
    assert model.segmentation_head[0].in_channels == 8


def test_a_local_encoder_file_is_loaded(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = build_model(ModelConfig(encoder_depth=3), classes=1)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.encoder.state_dict().items()}, str(path))
    torch.manual_seed(2)
    model = build_model(ModelConfig(encoder_depth=3, encoder_weights=str(path)), classes=1)
    assert torch.equal(model.encoder.conv1.weight, source.encoder.conv1.weight)
    by_name = build_model(ModelConfig(encoder_depth=3, encoder_weights=str(tmp_path)), classes=1)  # <folder>/<encoder>.safetensors
    assert torch.equal(by_name.encoder.conv1.weight, source.encoder.conv1.weight)
    with pytest.raises(ValueError, match=r"has no resnet34\.safetensors \(or \.pth/\.pt\)"):
        check_model_config(ModelConfig(encoder="resnet34", encoder_weights=str(tmp_path)))
    bad = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad))
    with pytest.raises(ValueError, match=r"no tensor matches the encoder"):
        build_model(ModelConfig(encoder_depth=3, encoder_weights=str(bad)), classes=1)


@pytest.mark.parametrize("encoder", ["resnet18", "tu-resnet10t"])
def test_an_unreachable_hub_is_one_line_that_names_the_fix(encoder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # Offline and an empty cache: nothing is downloaded, and nothing cached elsewhere is found.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"model\.encoder_weights=imagenet: could not fetch .* model\.encoder_weights=PATH, or null") as info:
        build_model(ModelConfig(encoder=encoder, encoder_depth=3, encoder_weights="imagenet"), classes=1)
    assert "\n" not in str(info.value)
