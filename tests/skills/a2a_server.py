"""A remote A2A agent for the tests, served by the official `a2a-sdk` server components
(DefaultRequestHandler, in-memory task store, its Starlette routes) with uvicorn on a
loopback port, in a thread. It answers "Remote says: <the task>" after a working status,
streamed in two artifact chunks, and records the requests' Authorization headers."""

import asyncio
import socket
import threading
import time
from contextlib import contextmanager

import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    Role,
    TaskState,
)
from starlette.applications import Starlette


class RemoteExecutor(AgentExecutor):
    def __init__(self) -> None:
        self.tasks: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        self.tasks.append(text)
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.update_status(
            TaskState.TASK_STATE_WORKING,
            message=new_text_message("Looking it up remotely.", role=Role.ROLE_AGENT),
        )
        await asyncio.sleep(0.05)
        await updater.add_artifact([Part(text="Remote says: ")], artifact_id="r", name="reply")
        await updater.add_artifact([Part(text=text)], artifact_id="r", append=True, last_chunk=True)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel()


class _Recorder:
    def __init__(self, app) -> None:
        self.app = app
        self.authorizations: list[str] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            self.authorizations.append(headers.get(b"authorization", b"").decode())
        await self.app(scope, receive, send)


class RemoteA2AServer:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        card = AgentCard(
            name="Remote researcher",
            description="Looks things up elsewhere.",
            version="1.0",
            supported_interfaces=[
                AgentInterface(url=self.url + "/rpc", protocol_binding="JSONRPC")
            ],
            capabilities=AgentCapabilities(streaming=True),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=[AgentSkill(id="lookup", name="Lookup", description="Finds facts.")],
        )
        self.executor = RemoteExecutor()
        handler = DefaultRequestHandler(
            agent_executor=self.executor, task_store=InMemoryTaskStore(), agent_card=card
        )
        routes = [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/rpc")]
        self.app = _Recorder(Starlette(routes=routes))
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def start(self) -> "RemoteA2AServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the A2A server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@contextmanager
def run_remote_a2a():
    server = RemoteA2AServer().start()
    try:
        yield server
    finally:
        server.stop()
