"""Exceptions that the command line turns into one-line messages.

Every error a user can cause (bad file, wrong weights folder, mismatched sizes) is an
``AnimateAnyoneError``; anything else escaping to the CLI is a bug and keeps its traceback.
"""


class AnimateAnyoneError(Exception):
    """Base class of user-facing errors."""


class InputError(AnimateAnyoneError):
    """An input file or argument is missing, unreadable or inconsistent."""


class WeightsError(AnimateAnyoneError):
    """A weights folder or checkpoint file is missing, unreadable or does not match the model."""


class ConfigError(AnimateAnyoneError):
    """A configuration file or preset is invalid."""
