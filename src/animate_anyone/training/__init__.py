"""Training: typed configs, the two-stage loop (plus the lab's VAE stage), checkpoints."""

from .config import TrainConfig, config_from_dict, load_config

__all__ = ["TrainConfig", "config_from_dict", "load_config"]
