"""How much memory the propagation plans to use: one pass's peak, the machine's usable share, and
the budget of the in-memory caches (:mod:`rerender.recent`)."""
from __future__ import annotations

import os

# Peak bytes per pixel of one running pass: the synthesis (packed guides and style of source and
# target, pyramid, NNF, error, occupancy: ~170 B/px measured at 1024^2) plus the pass's frames,
# flows and guides.
PASS_BYTES_PER_PIXEL = 250


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def usable_memory() -> int:
    """Bytes a job may plan to use: 80% of the machine's physical memory."""
    total = physical_memory()
    return 1 << 62 if total is None else int(total * 0.8)  # not POSIX: assume enough


def pass_memory(pixels: int) -> int:
    """Estimated peak memory of one propagation pass over frames of ``pixels`` pixels."""
    return PASS_BYTES_PER_PIXEL * int(pixels)


def cache_budget(share: int = 8, cap: int = 1 << 30) -> int:
    """Bytes one in-memory cache may hold: 1/``share`` of the physical memory, at most ``cap``."""
    total = physical_memory()
    return cap if total is None else int(min(cap, total // share))
