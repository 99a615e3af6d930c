"""User-facing error types. The CLI turns these into a one-line message and a non-zero exit."""


class AidetectError(Exception):
    """An error a user can cause and fix (bad file, missing model, broker down, bad dataset)."""


class ImageLoadError(AidetectError):
    """An input could not be decoded as an image."""


class ModelLoadError(AidetectError):
    """A model directory is missing, incomplete or unsafe."""


class DataSourceError(AidetectError):
    """A dataset source could not be loaded or its labels could not be mapped."""
