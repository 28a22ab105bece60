"""A planned clip in a model's layout: the tensors, the plan they follow and what made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence, Union

import torch

from msce.io.metadata import VideoMetadata
from msce.plan import Plan
from msce.targets import Target

if TYPE_CHECKING:  # pragma: no cover
    from msce.faces import FaceCrop, FaceTrack

__all__ = ["FrameBatch", "Target", "CropArg"]

CropArg = Union[None, str, "FaceCrop", Sequence[int], Sequence[Sequence[int]]]


@dataclass
class FrameBatch:
    """Frames of one plan in a model's layout.

    ``data``: as ``target.allocation`` lays it out: Qwen targets -> (grid_t*grid_h*grid_w,
    3*2*p*p) float; Frames -> (T, C, H, W) or (T, H, W, C); HF CLIP-style families -> (T, C,
    H, W). ``grid_thw``: (1, 3) int64 for patch-grid targets, else None.
    """

    data: torch.Tensor
    grid_thw: torch.Tensor | None
    plan: Plan
    target: Target
    metadata: VideoMetadata
    size: tuple[int, int]
    stats: dict = field(default_factory=dict)
    faces: FaceTrack | None = None  # crop="face": boxes, landmarks, per-frame status (msce.faces)
    # Source frame indices (sorted, distinct) of this batch that the decoder flagged as damaged
    # (corrupt / error-concealed); () for intact clips, frames in memory and frame folders.
    damaged: tuple[int, ...] = ()

    @property
    def indices(self) -> tuple[int, ...]:
        return self.plan.indices

    @property
    def timestamps(self) -> tuple[float, ...]:
        return self.plan.timestamps

    @property
    def roles(self) -> tuple[str, ...]:
        return self.plan.roles

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def damaged_positions(self) -> tuple[int, ...]:
        """Positions in output order (0-based, into ``indices``) whose frame is in ``damaged``."""
        bad = set(self.damaged)
        return tuple(k for k, i in enumerate(self.plan.indices) if i in bad)

    @property
    def num_tokens(self) -> int:
        """LLM tokens this batch costs (``target.num_tokens``; 0 for targets that do not count)."""
        return self.target.num_tokens(len(self.plan), *self.size)

    def to_hf(self, as_image: bool = False, timing: bool = False) -> dict[str, torch.Tensor]:
        """The tensors the target's Hugging Face model takes for this batch (``target.to_hf``):
        the keys and tensors its video (``as_image``: image) processor returns.

        ``timing=True`` adds the time inputs the model's full processor computes from the
        sampling, for a target that has them (``target.hf_timing``): Qwen2.5-VL's
        ``second_per_grid_ts``. Qwen3-VL's forward takes no time tensor: its frame times are
        text in the prompt, which its processor renders from :meth:`video_metadata`
        (docs/api.md)."""
        out = self.target.to_hf(self, as_image)
        if timing and not as_image:
            extra = getattr(self.target, "hf_timing", None)
            if extra is not None:
                out = {**out, **extra(self)}
        return out

    def video_metadata(self) -> dict:
        """The sampling as Hugging Face's ``VideoMetadata`` fields (``total_num_frames``,
        ``fps`` = the clip's true average rate, ``width``, ``height``, ``duration``,
        ``frames_indices`` = the plan's source indices in output order), for
        ``processor(..., video_metadata=[batch.video_metadata()], do_sample_frames=False)``:
        Qwen3-VL's processor writes its ``<t seconds>`` frame times from it, Qwen2.5-VL's
        its ``second_per_grid_ts``. Frame times are ``batch.timestamps``."""
        return {"total_num_frames": int(self.metadata.num_frames), "fps": float(self.metadata.average_fps),
                "width": int(self.metadata.width), "height": int(self.metadata.height),
                "duration": float(self.metadata.duration), "frames_indices": [int(i) for i in self.plan.indices]}
