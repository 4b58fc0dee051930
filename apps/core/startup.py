"""What a server process does once it has loaded, before it serves requests.

`freeze_startup_objects()` imports everything a request will need (the URLconf and with
it every view, serializer and model) and moves the objects alive at that point out of
the garbage collector's reach (`gc.freeze()`): they live as long as the process, and
without this every full collection walks them all again (measured: 400k objects, a
380-560 ms pause about every 40 list requests; see docs/performance.md), and then
collects less often (`GC_THRESHOLDS`): with the start-up objects frozen, what is left is
small, so Python's default thresholds made a full collection every few seconds while
answers streamed (18-85 ms each on PostgreSQL + Redis); with these, none in the same
bench, and the young collections stay short (list p99 within 2x its median).
"""

import gc

from django.urls import get_resolver

# Young collections every 10,000 allocations (Python's default: 700), a middle one every
# 10 young ones, a full one every 100 middle ones (default: 10) at most.
GC_THRESHOLDS = (10_000, 10, 100)


def freeze_startup_objects() -> int:
    """Load the URLconf, collect once, freeze what is left and set `GC_THRESHOLDS`.
    Returns the number of objects frozen. Call it at the end of the ASGI/WSGI module,
    never per request."""
    get_resolver().url_patterns  # noqa: B018 - imports every view module
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return gc.get_freeze_count()
