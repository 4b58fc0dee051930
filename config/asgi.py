"""ASGI entry point: HTTP through Django, WebSockets through Channels.

HTTP requests to the stream views go to a second Django handler that gives them no thread
of their own (apps/core/asgi.py): an open stream holds none.

`application` first binds the process's run executor to the server's event loop: at
startup when the server speaks the lifespan protocol (uvicorn), else on the first request
(daphne), so interactive runs execute on that loop (apps/conversations/executor.py).
"""

import asyncio
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
django.setup(set_prefix=False)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.conversations.executor import executor  # noqa: E402
from apps.core.asgi import PooledThreadHandler, ThreadlessHandler, route_threadless  # noqa: E402
from apps.core.websocket import OriginCheckedUnlessBearer  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

router = ProtocolTypeRouter(
    {
        "http": route_threadless(
            PooledThreadHandler(settings.REQUEST_THREADS), ThreadlessHandler()
        ),
        "websocket": OriginCheckedUnlessBearer(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            executor.bind_loop(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            executor.unbind_loop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    executor.bind_loop(asyncio.get_running_loop())  # an identity check once bound
    await router(scope, receive, send)


# The token counter's tables, loaded now rather than on the event loop by a first run.
from apps.providers.tokens import load_encoding  # noqa: E402

load_encoding()

# Everything loaded so far lives as long as the process: keep it out of every garbage
# collection (apps/core/startup.py).
from apps.core.startup import freeze_startup_objects  # noqa: E402

freeze_startup_objects()
