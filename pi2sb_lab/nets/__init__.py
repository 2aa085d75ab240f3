"""Backbones: every network takes ``(x_t, t, cond=None)`` and returns a tensor shaped like ``x_t``."""
