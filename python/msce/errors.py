"""The msce exception tree.

Every error msce raises on purpose is an :class:`MsceError`. The native core throws
the C++ classes of the same names, which the bindings translate to these.
"""

from __future__ import annotations

__all__ = [
    "MsceError",
    "DecodeError",
    "UnsupportedError",
    "PlanError",
    "TransformError",
    "CudaError",
    "BackendError",
    "DatasetError",
    "ConfigError",
    "FaceError",
]


class MsceError(Exception):
    """Base class of every error msce raises deliberately."""


class DecodeError(MsceError):
    """A video cannot be opened, demuxed or decoded (the message names the file)."""


class UnsupportedError(DecodeError):
    """A codec, pixel format or size that this build of msce cannot handle."""


class PlanError(MsceError, ValueError):
    """A frame plan that the clip cannot satisfy, or bad plan parameters."""


class TransformError(MsceError, ValueError):
    """Bad target parameters or input frames of the wrong shape or dtype."""


class CudaError(MsceError):
    """CUDA was requested but is unavailable, or a CUDA call failed."""


class BackendError(MsceError):
    """A model backend failed (load error, server error after retries, bad response)."""


class DatasetError(MsceError):
    """A dataset root, split file or annotation that is missing or malformed."""


class ConfigError(MsceError, ValueError):
    """An invalid option or combination of options."""


class FaceError(MsceError):
    """No face where one is required (``crop="face"`` with ``missing="error"``), no track
    with the requested id, or a face detector that cannot run (missing optional package)."""
