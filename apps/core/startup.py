"""What a server process does once it has loaded, before it serves requests.

`freeze_startup_objects()` imports everything a request will need (the URLconf and with
it every view, serializer and model) and moves the objects alive at that point out of
the garbage collector's reach (`gc.freeze()`): they live as long as the process, and
without this every full collection walks them all again (measured: 400k objects, a
380-560 ms pause about every 40 list requests; see docs/performance.md).
"""

import gc

from django.urls import get_resolver


def freeze_startup_objects() -> int:
    """Load the URLconf, collect once, then freeze what is left. Returns the number of
    objects frozen. Call it at the end of the ASGI/WSGI module, never per request."""
    get_resolver().url_patterns  # noqa: B018 - imports every view module
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
