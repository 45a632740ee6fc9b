"""tes-cts: a GA4GH TES v1.1 server that runs each task as a checksum-verified CTS-style job."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tes-cts")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
