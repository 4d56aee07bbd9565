"""The project's exception family.

CLIs catch ``AgeGenderError`` and print its message as one line, without a traceback,
because these are the known, user-fixable failures (bad flag, missing file, bad dataset).
"""


class AgeGenderError(Exception):
    """Base class of every error the project raises on purpose."""


class ParameterError(AgeGenderError, ValueError):
    """A flag, argument or parameter has a value outside what is accepted."""


class DatasetError(AgeGenderError):
    """A dataset file or folder is missing or does not have the expected form."""


class AudioError(AgeGenderError):
    """One audio file cannot be turned into features (missing, empty, corrupt, ...)."""


class ModelError(AgeGenderError):
    """A model file cannot be loaded or does not fit the requested task."""


class OutputError(AgeGenderError):
    """An output folder cannot be created or written."""


class TrainingError(AgeGenderError):
    """Training cannot go on (its loss or weights stopped being finite numbers)."""
