import os
import shutil
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "reference" / "moore_small_fixture"
LAYOUT = SHARED / "reference" / "moore_checkpoint_layout.json"
ASSETS = SHARED / "assets"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("RUN_SLOW") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow test: set RUN_SLOW=1 or pass -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def fixture_dir():
    if not FIXTURE.is_dir():
        pytest.skip(f"shared reference fixture not found at {FIXTURE}")
    return FIXTURE


@pytest.fixture
def layout_path():
    if not LAYOUT.is_file():
        pytest.skip(f"shared checkpoint layout not found at {LAYOUT}")
    return LAYOUT


@pytest.fixture
def tiny_config():
    from animate_anyone.models.presets import get_preset

    return get_preset("tiny")


@pytest.fixture
def tiny_model(tiny_config):
    from animate_anyone.models import AnimateAnyoneModel

    torch.manual_seed(0)
    model = AnimateAnyoneModel(tiny_config).eval()
    randomise_(model)
    return model


def randomise_(module: torch.nn.Module, scale: float = 0.2) -> None:
    """Give every parameter random values, including zero-initialised output layers, so that every
    path of the network contributes to the output."""
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") and p.ndim == 1:  # norm scales stay near 1
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=g) / max(1, p[0].numel()) ** 0.5)


def make_moore_folder(root: Path, fixture: Path) -> Path:
    """A Moore-AnimateAnyone `pretrained_weights/` folder built from the shared small fixture:
    its four .pth files, its UNet config, and seeded random VAE / CLIP encoder of its configs."""
    import json
    import shutil

    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = json.loads((fixture / "config.json").read_text())
    root.mkdir(parents=True, exist_ok=True)
    for name in ("denoising_unet.pth", "reference_unet.pth", "pose_guider.pth", "motion_module.pth"):
        shutil.copyfile(fixture / name, root / name)
    unet_dir = root / "stable-diffusion-v1-5" / "unet"
    unet_dir.mkdir(parents=True)
    (unet_dir / "config.json").write_text(json.dumps(cfg["sd_unet_config"]))
    torch.manual_seed(cfg["seed"])
    vae_cfg = {k: v for k, v in cfg["vae_config"].items() if k != "scaling_factor"}
    AutoencoderKL(**vae_cfg).save_pretrained(root / "sd-vae-ft-mse")
    CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["clip_vision_config"])).save_pretrained(root / "image_encoder")
    return root


@pytest.fixture(scope="session")
def moore_folder(tmp_path_factory):
    if not FIXTURE.is_dir():
        pytest.skip(f"shared reference fixture not found at {FIXTURE}")
    return make_moore_folder(tmp_path_factory.mktemp("weights") / "pretrained_weights", FIXTURE)


@pytest.fixture
def reenact_weights(moore_folder, tmp_path):
    """A released-layout ``reenact/`` folder built from the shared fixture (with its SD folders beside it)."""
    from tests.weights.test_reenact_parity import make_reenact_folder

    root = tmp_path / "pretrained_weights"
    for d in ("sd-vae-ft-mse", "image_encoder", "stable-diffusion-v1-5"):
        shutil.copytree(moore_folder / d, root / d)
    make_reenact_folder(root / "reenact", FIXTURE)
    return root / "reenact"
