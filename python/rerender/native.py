"""The native core (``rerender._native``), loaded with an error a user can act on.

Importing the extension reads ``RERENDER_SIMD`` and refuses a path this CPU does not have; that
refusal arrives as an ``ImportError``. :func:`require_native` turns it into a :class:`ValueError`
naming the variable (a user error: exit 2, no traceback); ``RERENDER_BACKEND`` is checked at the
same time. The commands and :meth:`Job.open` call it before anything is decoded or written.
"""
from __future__ import annotations

import os
from types import ModuleType

SETTINGS = ("RERENDER_SIMD",)  # environment variables the extension reads when it loads


def require_native() -> ModuleType:
    """``rerender._native``; raises ValueError naming the setting when it refused to load."""
    try:
        from . import _native
    except ImportError as e:
        message = str(e)
        named = [v for v in SETTINGS if message.startswith(f"{v}:")]
        if named:  # e.g. "RERENDER_SIMD: unknown SIMD path 'bogus' (this CPU supports: sse2, avx2)"
            raise ValueError(f"{message}; unset {named[0]} (now {os.environ.get(named[0])!r}) or name one of "
                             "those paths (or baseline)") from None
        raise
    from .backend import env_backend

    env_backend()  # RERENDER_BACKEND is read at the first native call: check it now too
    return _native
