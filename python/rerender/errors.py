"""The package's error types: each names the file, frame or option at fault in its message.

All user errors are ValueErrors, so a caller (the CLI, the Blender worker) can tell "fix your
input" from a bug with one ``except ValueError``.
"""
from __future__ import annotations


class MediaError(ValueError):
    """A media file or argument is unusable; the message names the file and the problem."""


class AudioError(MediaError):
    """The audio track of a source cannot be carried over (undecodable, unsupported)."""


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the key at fault."""


class JobError(ValueError):
    """The job cannot run with these inputs; the message names the file, frame or option at fault."""


class JobCancelled(RuntimeError):
    """Raised inside worker threads after another worker failed or the job was cancelled."""


class ClusterError(JobError):
    """A Dask cluster could not run the job (scheduler unreachable, workers lost again and again, work
    directory not shared with a worker); the message says what to check."""
