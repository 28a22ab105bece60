"""Facial actions as landmark displacements, and the intensity trajectory of an event.

An action moves a few landmarks; at intensity 1 landmark ``n`` moves by ``shift[n]``
(dx, dy) in units of the face width (x right, y down). The moves follow the FACS action
units each expression is built from (Ekman & Friesen), at the size of a clear but small
expression:

=========================  =========  =============================================
action                     emotion    what moves
=========================  =========  =============================================
``smile``                  happiness  lip corners up and out (AU12), lower lids up (AU6)
``brow_lower``             anger      brows down and together (AU4), upper lids down
``brow_raise``             surprise   brows up (AU1+2), upper lids up, lower lids down
                                      (eyes widen, AU5)
``lip_corner_depress``     sadness    lip corners down (AU15), lower lip down
``upper_lip_raise``        disgust    upper lip up (AU10), lip corners slightly up
=========================  =========  =============================================

The event trajectory (:func:`event_intensity`) is 0 before the onset, rises as a half
cosine to ``amplitude`` at the apex, falls as a half cosine to 0 at the offset and stays
0 after: it is continuous with a continuous first derivative, like real facial movement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msce.errors import ConfigError

__all__ = ["Action", "ACTIONS", "action_names", "event_intensity", "landmark_sigma"]


@dataclass(frozen=True)
class Action:
    name: str
    emotion: str
    shift: dict  # landmark -> (dx, dy) in face widths at intensity 1


def _mirror(d: dict) -> dict:
    """Left-side moves -> the same moves on the right side (dx negated)."""
    out = dict(d)
    for n, (dx, dy) in d.items():
        if "_l_" in n or n.endswith("_l"):
            out[n.replace("_l_", "_r_") if "_l_" in n else n[:-2] + "_r"] = (-dx, dy)
    return out


ACTIONS: dict[str, Action] = {
    "smile": Action("smile", "happiness", _mirror({
        "mouth_l": (-0.040, -0.045), "lid_l_low": (0.0, -0.012), "lip_up": (0.0, -0.008),
        "lip_low": (0.0, 0.006)})),
    "brow_lower": Action("brow_lower", "anger", _mirror({
        "brow_l_in": (0.028, 0.040), "brow_l_mid": (0.016, 0.034), "brow_l_out": (0.004, 0.022),
        "lid_l_up": (0.0, 0.012)})),
    "brow_raise": Action("brow_raise", "surprise", _mirror({
        "brow_l_in": (0.0, -0.045), "brow_l_mid": (0.0, -0.050), "brow_l_out": (0.0, -0.036),
        "lid_l_up": (0.0, -0.018), "lid_l_low": (0.0, 0.010)})),
    "lip_corner_depress": Action("lip_corner_depress", "sadness", _mirror({
        "mouth_l": (0.012, 0.048), "lip_low": (0.0, 0.012)})),
    "upper_lip_raise": Action("upper_lip_raise", "disgust", _mirror({
        "lip_up": (0.0, -0.034), "mouth_l": (0.006, -0.014)})),
}


def action_names() -> list[str]:
    return list(ACTIONS)


def get_action(name: str) -> Action:
    try:
        return ACTIONS[name]
    except KeyError:
        raise ConfigError(f"unknown facial action {name!r}; known: {action_names()}") from None


def landmark_sigma(name: str) -> float:
    """Radius (Gaussian sigma, face widths) of the skin a landmark drags along: small
    for the eyelids, larger for brows and lips."""
    if name.startswith("lid_"):
        return 0.035
    if name.startswith("brow_"):
        return 0.050
    return 0.060


def event_intensity(t: np.ndarray | float, onset: float, apex: float, offset: float,
                    amplitude: float = 1.0) -> np.ndarray:
    """Expression intensity at times ``t`` (seconds) for one event; see the module docstring."""
    if not (onset < apex < offset):
        raise ConfigError(f"an event needs onset < apex < offset (got {onset}, {apex}, {offset})")
    t = np.asarray(t, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - onset) / (apex - onset), 0.0, 1.0))
    fall = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - apex) / (offset - apex), 0.0, 1.0))
    return amplitude * np.where(t <= apex, rise, fall)
