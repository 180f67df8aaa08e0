"""Errors that mean "this job cannot run with these inputs", shared by the job's modules."""
from __future__ import annotations


class JobError(ValueError):
    """The job cannot run with these inputs; the message names the file, frame or option at fault."""


class JobCancelled(RuntimeError):
    """Raised inside worker threads after another worker failed or the job was cancelled."""
