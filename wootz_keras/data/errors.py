"""The one error type for bad user data and models."""


class DataError(ValueError):
    """Bad user data or model: the message names the file, folder or flag at
    fault and what was expected, on one line.

    Example:
        >>> raise DataError("--data: /tmp/none: no such file or folder")
        Traceback (most recent call last):
        ...
        wootz_keras.data.errors.DataError: --data: /tmp/none: no such file or folder
    """
