"""Face reenactment pipeline: a portrait driven by facial-landmark maps (architecture.md §13).

The same sampler as :class:`AnimateAnyonePipeline` with the reenactment mechanism: under guidance
the bank holds two rows, ``[zero latent, reference]``, and *both* halves read their own row; pose
features are ``pose_guider(upper-face map) + pose_guider2(mouth map)``; the bank is never rounded.
"""

from __future__ import annotations

import torch

from ..models.presets import ModelConfig
from ..models.reenact import ReenactModel
from .pipeline_animate import AnimateAnyonePipeline
from .preprocess import pose_pixels


class FaceMaps:
    """Upper-face and mouth map videos that slice together (what the sampler's hooks receive)."""

    def __init__(self, upper, mouth):
        if len(upper) != len(mouth):
            raise ValueError(f"{len(upper)} upper-face maps but {len(mouth)} mouth maps")
        self.upper, self.mouth = upper, mouth

    def __len__(self) -> int:
        return len(self.upper)

    def __getitem__(self, index):
        return FaceMaps(self.upper[index], self.mouth[index])


class ReenactPipeline(AnimateAnyonePipeline):
    uncond_reads_reference = True

    @classmethod
    def from_config(cls, config: ModelConfig, seed: int | None = 0) -> ReenactPipeline:
        base = AnimateAnyonePipeline.from_config(config, seed=seed)
        model = ReenactModel(config)
        model.load_state_dict(base.model.state_dict(), strict=False)  # shared components
        if seed is not None:
            torch.nn.init.normal_(model.pose_guider2.conv_out.weight, std=0.02)
        return cls(model, base.vae, base.image_encoder)

    @classmethod
    def from_pretrained(cls, folder, device="cpu", dtype=torch.float32) -> ReenactPipeline:
        """Load a reenactment weights folder: the release's ``reenact/`` (beside
        ``sd-vae-ft-mse/`` and ``image_encoder/``) or our native-reenact layout."""
        from ..weights.layouts import load_reenact_pipeline

        return load_reenact_pipeline(folder, device=device, dtype=dtype)

    @classmethod
    def from_pipeline(cls, pipe: AnimateAnyonePipeline) -> ReenactPipeline:
        """A reenactment pipeline starting from a body model (e.g. to fine-tune on faces): same
        networks, a new ``pose_guider2`` whose zero output conv adds nothing until trained."""
        model = ReenactModel(pipe.model.config)
        missing, unexpected = model.load_state_dict(pipe.model.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("pose_guider2.") for k in missing), (missing, unexpected)
        return cls(model, pipe.vae, pipe.image_encoder)

    def __call__(self, ref_image, upper_frames, mouth_frames=None, **kwargs):  # type: ignore[override]
        if kwargs.get("sequential_cfg"):
            raise ValueError("sequential_cfg is not available for face reenactment (both halves read the bank)")
        frames = upper_frames if mouth_frames is None else FaceMaps(upper_frames, mouth_frames)
        return super().__call__(ref_image, frames, **kwargs)

    def _write_reference(self, ref_latents, embeds, do_cfg):
        self.model.bank.storage_dtype = None  # the reenactment code never rounds its bank
        self.model.write_reference_cfg(ref_latents, embeds, guidance=do_cfg)

    def _pose_pixels(self, frames: FaceMaps, num_frames: int, width: int, height: int):
        return (pose_pixels(frames.upper[:num_frames], width, height),
                pose_pixels(frames.mouth[:num_frames], width, height))

    def _pose_modules(self):
        return (self.model.pose_guider, self.model.pose_guider2)

    def _pose_features(self, poses, window):
        upper, mouth = poses
        return self.model.face_features(upper[:, :, window].to(self.device, self.dtype),
                                        mouth[:, :, window].to(self.device, self.dtype))

