"""Typed training configuration, read from YAML with strict keys.

Every section is a dataclass; an unknown key anywhere is an error naming it (a typo must never be
silently ignored for a multi-day run). See ``configs/train/*.yaml`` for complete examples.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

STAGES = ("vae", "image", "video", "refiner")


@dataclass
class ModelSection:
    preset: str = "tiny"  # architecture when starting from scratch
    init_from: str | None = None  # any loadable weights folder (Moore, MusePose, native, a previous stage)
    init_vae_from: str | None = None  # a diffusers VAE folder or a native layout's `vae/` (overrides init_from's)
    # any loadable weights folder of another architecture: the `preset` is built, then every tensor of
    # it whose name and shape match one of this folder's (UNets, pose guider, motion modules, CLIP
    # encoder) is copied; the rest keep their fresh values (e.g. moving the lab model to lab-f4)
    warm_start_from: str | None = None
    gradient_checkpointing: bool = False
    reset_motion_modules: bool = False  # video stage: zero the motion modules' output layers first
    reenact: bool = False  # face reenactment: two pose guiders fed the meta's face_upper/face_mouth maps
    vae_decoder_only: bool = False  # vae stage: train the decoder only; the latent space (and every model on it) stays
    vae_latent_noise: float = 0.0  # vae/refiner stage: decode latents + N(0, s^2), s ~ U(0, this) in scaled units
    refiner_channels: int = 32  # refiner stage: width of the reference detail refiner added to a model without one


@dataclass
class DataSection:
    meta: list[str] = field(default_factory=list)  # meta JSON files (lab or prepared real data)
    width: int = 128
    height: int = 128
    num_frames: int = 8  # video stage: frames per clip
    sample_rate: int = 2  # video stage: frame stride inside a clip
    sample_margin: int = 4  # image stage: min distance between reference and target frame
    crop_scale: tuple[float, float] = (0.9, 1.0)
    in_memory: bool = True  # decode every clip once (lab-sized data)
    vae_crop: int = 0  # vae stage: train on random square crops of this size (0 = whole frames)
    split: str | None = None  # only meta entries of this split (lab meta files mark "train"/"heldout"); null = all
    num_workers: int = 0  # processes that assemble batches ahead of the step (0 = the training process itself)
    # draw some clips more often: {meta field: {value: factor}}, e.g. {motion: {turn: 4}} makes each
    # turning clip of a lab meta file 4x as likely as any other clip; factors of several fields multiply
    oversample: dict[str, dict[str, float]] = field(default_factory=dict)
    # image/video stages: hide the reference's face from target frames whose figure faces away from it
    # (the pipeline's reference_hold, from the entries' keypoints files), as `animate --hold-steps 1` does
    reference_hold: bool = False


@dataclass
class NoiseSection:
    beta_schedule: str = "linear"  # the reference implementation trained with "scaled_linear"
    zero_snr: bool = True
    prediction_type: str = "v_prediction"
    snr_gamma: float | None = 5.0  # min-SNR weighting; null = plain MSE
    noise_offset: float = 0.05
    uncond_ratio: float = 0.1  # probability that a whole batch is unconditional (no reference, blank CLIP input)
    eye_loss_weight: float = 0.0  # reenact: the loss counts (1 + this) on latent cells at and next to the pupils
    # body model: the loss counts (1 + this) on latent cells under the drawn pose map and next to them
    # (the figure's skeleton), 1 on the rest (mostly background, which the reference already shows)
    pose_loss_weight: float = 0.0


@dataclass
class OptimSection:
    lr: float = 1e-5
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float = 1.0
    warmup_steps: int = 1
    use_8bit_adam: bool = False
    gradient_accumulation_steps: int = 1
    ema_decay: float | None = None  # e.g. 0.999; the exported weights are then the EMA weights


@dataclass
class TrainConfig:
    # "vae" (lab only: train the autoencoder), "image" (stage 1), "video" (stage 2), "refiner" (the
    # reference detail refiner after the decoder, everything else frozen)
    stage: str = "image"
    output_dir: str = "runs/train"
    seed: int = 12580
    max_steps: int = 1000
    max_minutes: float | None = None  # also stop (checkpoint, export) once this much training time has passed
    batch_size: int = 4
    mixed_precision: str = "no"  # "no", "fp16", "bf16"
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    validate_every: int = 0  # steps between validation videos (0 = only at the end, -1 = never)
    validation_steps: int = 10  # DDIM steps of the validation video
    log_every: int = 10
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    noise: NoiseSection = field(default_factory=NoiseSection)
    optim: OptimSection = field(default_factory=OptimSection)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.noise.prediction_type not in ("v_prediction", "epsilon"):
            raise ConfigError(f"noise.prediction_type must be v_prediction or epsilon, got {self.noise.prediction_type!r}")
        for name in ("max_steps", "batch_size", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.data.num_workers < 0:
            raise ConfigError(f"data.num_workers must be 0 or more, got {self.data.num_workers}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.data.width % 8 or self.data.height % 8:
            raise ConfigError(f"data.width/height must be multiples of 8, got {self.data.width}x{self.data.height}")
        if self.model.vae_latent_noise < 0:
            raise ConfigError(f"model.vae_latent_noise must be non-negative, got {self.model.vae_latent_noise}")
        if self.stage != "vae" and self.model.vae_decoder_only:
            raise ConfigError("model.vae_decoder_only applies to the vae stage only")
        if self.stage not in ("vae", "refiner") and self.model.vae_latent_noise:
            raise ConfigError("model.vae_latent_noise applies to the vae and refiner stages only")
        if self.model.refiner_channels < 1:
            raise ConfigError(f"model.refiner_channels must be at least 1, got {self.model.refiner_channels}")
        if self.model.warm_start_from and self.model.init_from:
            raise ConfigError("model.warm_start_from and model.init_from exclude each other: init_from loads a "
                              "model as it is, warm_start_from copies what fits into the preset's")
        if self.noise.pose_loss_weight < 0:
            raise ConfigError(f"noise.pose_loss_weight must be non-negative, got {self.noise.pose_loss_weight}")
        if self.noise.pose_loss_weight and (self.model.reenact or self.stage not in ("image", "video")):
            raise ConfigError("noise.pose_loss_weight applies to the body model's image and video stages only")
        if self.noise.eye_loss_weight < 0:
            raise ConfigError(f"noise.eye_loss_weight must be non-negative, got {self.noise.eye_loss_weight}")
        if self.data.reference_hold and (self.model.reenact or self.stage not in ("image", "video")):
            raise ConfigError("data.reference_hold applies to the body model's image and video stages only")
        if self.noise.eye_loss_weight and not (self.model.reenact and self.stage in ("image", "video")):
            raise ConfigError("noise.eye_loss_weight needs model.reenact: true and the image or video stage "
                              "(the pupils are read from the upper face map)")
        for name, factors in self.data.oversample.items():
            for value, factor in factors.items():
                if not factor > 0:
                    raise ConfigError(f"data.oversample.{name}.{value} must be positive, got {factor}")
        if self.stage == "video" and not 1 <= self.data.num_frames <= 32:
            raise ConfigError("data.num_frames must be between 1 and 32 (the motion modules' position table)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        path = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        else:
            kwargs[key] = _coerce(value, hint, path)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where + ': ' if where else ''}{exc}") from None


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, path) for v, a in zip(value, args))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")

        def key(k):  # a YAML key such as 3 or 1.5 names the meta value "3" / "1.5"
            numeric = isinstance(k, (int, float)) and not isinstance(k, bool)
            return str(k) if args[0] is str and numeric else _coerce(k, args[0], path)

        return {key(k): _coerce(v, args[1], f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(v, args[0], path) for v in value]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and value != int(value)):
            raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r}")
        return hint(value)
    if hint is str:
        if isinstance(value, bool):  # YAML 1.1 reads a bare no/yes/off/on as a boolean (mixed_precision: no)
            value = "no" if value is False else "yes"
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, data, "")


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config; ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML).
    Relative paths in ``data.meta`` and ``model.init_*`` are taken relative to the config file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    cfg = config_from_dict(data)
    base = path.resolve().parent

    def rel(p: str | None) -> str | None:
        return None if p is None else str((base / p).resolve()) if not Path(p).is_absolute() else p

    cfg.data.meta = [rel(m) for m in cfg.data.meta]
    cfg.model.init_from = rel(cfg.model.init_from)
    cfg.model.init_vae_from = rel(cfg.model.init_vae_from)
    cfg.model.warm_start_from = rel(cfg.model.warm_start_from)
    return cfg
