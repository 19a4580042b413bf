"""The errors of the serving road, one tree (as httpx's): catch ``DigitsError`` for any of
them, or the branch you mean. The API answers each branch with one status, in one handler
(``digits.api.errors``), always as ``{"detail": "<message>"}``:

    DigitsError
    +-- InvalidInputError            422  the request cannot be used as sent
    |   +-- PreprocessError          422  an image cannot become a model input
    |   |   +-- EmptyImageError      422  a blank drawing (detail starts "empty drawing:")
    |   |   +-- ImageTooLargeError   413  over the byte or pixel limit
    |   |   +-- UnsupportedImageError 415 not a decodable PNG or JPEG
    |   +-- UnsupportedMediaTypeError 415 a body of a content type the route does not take
    |   +-- TooManyDigitsError       422  a drawing with more pieces than a number has digits
    |   +-- StrokesError             422  strokes sent beside a drawing, malformed or too many
    +-- NotFoundError                404  no such prediction or number, or its drawing was purged
    +-- UnavailableError             503  try again later (with Retry-After)
        +-- DatabaseUnavailableError      the database is unreachable and the answer needs it
        +-- PredictionSpooledError        the prediction (or number) waits in a spool
        +-- SpoolError                    the spool cannot be written
"""

from __future__ import annotations

import uuid


class DigitsError(Exception):
    """Anything the serving road refuses or cannot do; the message says why."""

    # The same request may succeed later: the answer carries Retry-After (every 503 does).
    retry_later = False


class InvalidInputError(DigitsError, ValueError):
    """The request's input cannot be used as sent."""


class PreprocessError(InvalidInputError):
    """The input cannot become a model input."""


class EmptyImageError(PreprocessError):
    """The image holds no drawing (blank or nearly so)."""


class ImageTooLargeError(PreprocessError):
    """The input is over the byte or pixel limit."""


class UnsupportedImageError(PreprocessError):
    """The bytes are not a decodable PNG or JPEG, or the array has an unusable shape."""


class UnsupportedMediaTypeError(InvalidInputError):
    """The body is of a content type the route does not take."""


class TooManyDigitsError(InvalidInputError):
    """The drawing holds more pieces than a number may have digits (DIGITS_MAX_NUMBER_DIGITS)."""


class StrokesError(InvalidInputError):
    """The strokes sent beside a drawing are malformed or over the limits."""


class NotFoundError(DigitsError, LookupError):
    """What was asked for does not exist (any more)."""


class PredictionNotFoundError(NotFoundError):
    def __init__(self, prediction_id: uuid.UUID) -> None:
        super().__init__(f"no prediction with id {prediction_id}")
        self.prediction_id = prediction_id


class NumberNotFoundError(NotFoundError):
    def __init__(self, number_id: uuid.UUID) -> None:
        super().__init__(f"no number with id {number_id}")
        self.number_id = number_id


class UnavailableError(DigitsError):
    """A dependency is away for now: the same request may succeed in a moment."""


class DatabaseUnavailableError(UnavailableError):
    """The database cannot be reached and the answer needs it."""


class PredictionSpooledError(UnavailableError):
    """The prediction (or number) exists but waits in a local spool until the database is
    back."""


class SpoolError(UnavailableError):
    """The spool cannot be written (disk full, directory not writable)."""
