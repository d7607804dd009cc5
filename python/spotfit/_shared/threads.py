"""The one thread policy: how many cores this process may use, and the cap on OpenMP threads."""
from __future__ import annotations

import numbers
import os

from .. import _spotcore

#: More OpenMP threads than this is never useful, and libgomp crashes when it cannot create the
#: threads asked for; the core caps at the same number (spotcore::kMaxThreads).
MAX_THREADS = int(_spotcore.max_threads)


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads(value) -> int:
    """Validated OpenMP thread request: 0 for None (the core's default), else 1..MAX_THREADS."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= MAX_THREADS:
        raise ValueError(f"threads must be an integer in [1, {MAX_THREADS}] or None, got {value!r}")
    return int(value)


def count(value=None) -> int:
    """Threads a parallel loop of the Python layer uses: ``value`` if given (validated), else OMP_NUM_THREADS,
    else the usable cores; never more than MAX_THREADS (as the core)."""
    if value:
        return threads(value)
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0]
    n = int(env) if env.strip().isdigit() and int(env) > 0 else usable_cores()
    return min(n, MAX_THREADS)
