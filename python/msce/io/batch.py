"""A planned clip in a model's layout: the tensors, the plan they follow and what made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence, Union

import torch

from msce.errors import TransformError
from msce.io.metadata import VideoMetadata
from msce.plan import Plan
from msce.targets import Frames, QwenVL

if TYPE_CHECKING:  # pragma: no cover
    from msce.faces import FaceCrop, FaceTrack

__all__ = ["FrameBatch", "Target", "CropArg"]

Target = Union[QwenVL, Frames]
CropArg = Union[None, str, "FaceCrop", Sequence[int], Sequence[Sequence[int]]]


@dataclass
class FrameBatch:
    """Frames of one plan in a model's layout.

    ``data``: Qwen targets -> (grid_t*grid_h*grid_w, 3*2*p*p) float; Frames -> (T, C, H, W)
    or (T, H, W, C). ``grid_thw``: (1, 3) int64 for Qwen targets, else None.
    """

    data: torch.Tensor
    grid_thw: torch.Tensor | None
    plan: Plan
    target: Target
    metadata: VideoMetadata
    size: tuple[int, int]
    stats: dict = field(default_factory=dict)
    faces: FaceTrack | None = None  # crop="face": boxes, landmarks, per-frame status (msce.faces)

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
    def num_tokens(self) -> int:
        """LLM tokens this batch costs (Qwen targets); 0 for plain frames."""
        if self.grid_thw is None:
            return 0
        t, h, w = (int(v) for v in self.grid_thw[0])
        m = self.target.merge
        return t * h * w // (m * m)

    def to_hf(self, as_image: bool = False) -> dict[str, torch.Tensor]:
        """What a Qwen model's forward/generate takes for this batch."""
        if self.grid_thw is None:
            raise TransformError("to_hf() needs a QwenVL target")
        if as_image:
            if len(self.plan) != 1:
                raise TransformError(f"as_image needs a one-frame batch (this one has {len(self.plan)} frames)")
            return {"pixel_values": self.data, "image_grid_thw": self.grid_thw}
        return {"pixel_values_videos": self.data, "video_grid_thw": self.grid_thw}

    def video_metadata(self) -> dict:
        """Sampling facts Qwen3-VL needs for its timestamp text (true fps and indices)."""
        return {"fps": float(self.metadata.average_fps), "frames_indices": list(self.plan.indices),
                "total_num_frames": int(self.metadata.num_frames), "timestamps": list(self.plan.timestamps),
                "duration": float(self.metadata.duration)}
