"""Exceptions that the CLI turns into one-line messages.

Every failure a user can cause (bad file, wrong model, unsupported image) raises a
`LicError` subclass with a message that makes sense without a traceback.
"""


class LicError(Exception):
    """Base class: a user-facing error whose message is one line."""


class InputError(LicError):
    """The input image or path cannot be used."""


class FormatError(LicError):
    """A .lic file is truncated, corrupted, or not a .lic file at all."""


class ModelError(LicError):
    """The model needed to decode a file is missing, different, or unknown."""


class DeterminismError(LicError):
    """This machine derived different entropy parameters than the encoder did."""


class ResourceError(LicError):
    """The work is valid but exceeds a limit: the pixel limit, or the memory of this machine."""
