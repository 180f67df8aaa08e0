"""A byte-bounded, thread-safe memory of the most recently used arrays.

The propagation keeps what it reads or computes more than once within a run (decoded flows and
occlusion masks, a segment's candidates between its passes and its blend) in memory up to a budget;
past the budget the oldest entries go and their readers fall back to the work directory's files,
which hold the same values.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Hashable

import numpy as np


def _nbytes(value) -> int:
    return sum(getattr(a, "nbytes", 0) for a in value) if isinstance(value, tuple) else value.nbytes


class Recent:
    """The most recently used values (arrays, or tuples of arrays) up to ``budget`` bytes. Values
    are made read-only when stored: every reader shares them, nobody may change them in place."""

    def __init__(self, budget: int):
        self.budget, self.used = int(budget), 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value, nbytes: int | None = None):
        """Keep ``value`` (evicting the oldest entries past the budget); returns it. ``nbytes``: what
        it costs (default: the size of its arrays; less when it refers to arrays kept anyway)."""
        for a in value if isinstance(value, tuple) else (value,):
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        size = _nbytes(value) if nbytes is None else int(nbytes)
        if size > self.budget:
            return value
        with self._lock:
            self._discard(key)
            self._items[key] = (value, size)
            self.used += size
            while self.used > self.budget:
                _, (_, gone) = self._items.popitem(last=False)
                self.used -= gone
        return value

    def pop(self, key: Hashable) -> None:
        with self._lock:
            self._discard(key)

    def drop_where(self, keep) -> None:
        """Forget every entry whose key ``keep(key)`` rejects."""
        with self._lock:
            for key in [k for k in self._items if not keep(k)]:
                self._discard(key)

    def _discard(self, key) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old[1]
