"""User-facing error types and the exit-code contract of the ``aidetect`` command.

The CLI (:mod:`aidetect.cli`) turns an :class:`AidetectError` into one line on stderr and
exit code :data:`EXIT_USAGE`, never a traceback.

Exit codes, the same for every command:

- :data:`EXIT_OK` (0): every input was scored, or the command did what it was asked;
- :data:`EXIT_SOME_FAILED` (1): the command ran, but some inputs failed (``predict`` with a
  file that does not decode, ``scan`` with failed files); each failure is listed with its reason;
- :data:`EXIT_USAGE` (2): nothing useful was done because of a usage, configuration or
  service error: a bad option or argument, a bad setting or config file, a missing model,
  a broker or database that cannot be reached.

130 is kept for Ctrl-C (aborted / interrupted).
"""

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class AidetectError(Exception):
    """An error a user can cause and fix (bad file, missing model, broker down, bad dataset)."""


class ConfigError(AidetectError):
    """A setting (environment variable, config file, command-line folder) is unusable."""


class ImageLoadError(AidetectError):
    """An input could not be decoded as an image. The message is the reason only (the
    caller knows which input it was); ``source`` names the input when the decoder was told."""

    def __init__(self, reason: str, source: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source


class ModelLoadError(AidetectError):
    """A model directory is missing, incomplete or unsafe."""


class DataSourceError(AidetectError):
    """A dataset source could not be loaded or its labels could not be mapped."""
