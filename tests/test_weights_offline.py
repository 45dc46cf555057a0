"""Registered weights that need a download, with no way to download them:
one error that says what the file is, where it comes from, where the cache
expects a copy fetched elsewhere, and how to convert one instead; a copy put
there is then used without any download.

The origin is pointed at a closed local port (a real connection refused),
so the test never downloads, with or without a network."""

import dataclasses
import os

import pytest

from bn_zoo.models import catalogue, hub
from bn_zoo.models.download_errors import WeightsDownloadError

UNREACHABLE = "http://127.0.0.1:9/"  # The discard port: nothing listens on it.


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """The registered releases' origins unreachable, the cache in tmp_path."""
    original = catalogue.weights_of

    def weights_of(model_name):
        return {name: dataclasses.replace(entry, origin=UNREACHABLE + entry.file_name)
                for name, entry in original(model_name).items()}

    monkeypatch.setattr(catalogue, "weights_of", weights_of)
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path / "keras"))
    return tmp_path / "keras"


@pytest.mark.parametrize("weights, source, variant", [
    ("imagenet", "slim", "slim"), ("imagenet_caffe", "caffe_torch", "caffe")])
def test_a_failed_download_says_where_from_and_how_to_do_without(offline, weights, source,
                                                                  variant):
    entry = catalogue.weights_of("bn_inception")[weights]
    cached = os.path.join(offline, hub.RELEASES_SUBDIR, entry.file_name)
    with pytest.raises(WeightsDownloadError) as raised:
        hub.fetch_converted("bn_inception", weights, 1000)
    message = str(raised.value)
    assert isinstance(raised.value, OSError)  # What the commands report in one line.
    assert "\n" not in message
    for part in (f"downloaded once, from {entry.origin}", "the download failed (",
                 "Connection refused", f"copy it to {cached}, where it is found on the next call",
                 f"python -m trainers.convert --source={source} --input={entry.file_name}",
                 f"variant='{variant}'"):
        assert part in message, (part, message)
    assert not os.path.exists(cached)  # Nothing half-downloaded left.

    # The way out it names: a copy put there is taken without a download.
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    with open(cached, "wb") as f:
        f.write(b"a release fetched on another machine")
    assert hub.fetch_release("bn_inception", weights) == cached
