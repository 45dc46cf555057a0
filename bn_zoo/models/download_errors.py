"""The error for registered weights that could not be downloaded.

`keras.utils.get_file` reports a failed download as a bare `Exception`
("URL fetch failure on ..."). `download_error` turns it into a
`WeightsDownloadError` that says what the file is, where it comes from,
where the Keras cache expects it, and how to use a copy fetched on another
machine: put it in the cache (then `weights=` the registered name works
offline), or, for a public release, convert it with `python -m
trainers.convert` and pass the converted file.
"""

import os
import urllib.error


class WeightsDownloadError(ConnectionError):
    """Registered weights need a download that failed (no network, a proxy,
    the server). An OSError, as a failed connection is."""


def is_download_failure(error):
    """Whether `error`, raised by `keras.utils.get_file`, is a failed
    download (rather than, e.g., a file that fails its hash check)."""
    if isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError)):
        return True
    cause = error.__cause__ or error.__context__
    return isinstance(cause, (urllib.error.URLError, ConnectionError, TimeoutError)) or str(
        error).startswith("URL fetch failure")


def download_error(entry, cache_path, error):
    """A `WeightsDownloadError` for registered weights `entry` (a
    `RegisteredWeights`) that `keras.utils.get_file` could not download
    to `cache_path`; `error` is what it raised."""
    cause = error.__cause__ or error.__context__
    reason = getattr(cause, "reason", None) or getattr(error, "reason", None) or error
    message = (
        f"The registered weights file {entry.file_name} is downloaded once, from "
        f"{entry.origin}, and the download failed ({reason}). Check the network "
        "connection (and a proxy: urllib reads HTTP_PROXY/HTTPS_PROXY), or, without "
        "network access here, download the file on another machine and copy it to "
        f"{cache_path}, where it is found on the next call")
    if entry.release is not None:
        stem = os.path.splitext(os.path.splitext(entry.file_name)[0])[0]
        variant = entry.model_kwargs.get("variant")
        arguments = f", variant={variant!r}" if variant else ""
        message += (
            " and converted; or convert it yourself: python -m trainers.convert "
            f"--source={entry.release} --input={entry.file_name} "
            f"--output={stem}.weights.h5, and load that with "
            f"bn_zoo.create_model('bn_inception'{arguments}, "
            f"weights='{stem}.weights.h5')")
    return WeightsDownloadError(message + ".")
