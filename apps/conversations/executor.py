"""The run executor: one object per process that owns where runs execute.

It holds the event loop runs execute on (bound explicitly by the ASGI application at
startup or on its first request, see config/asgi.py; a Celery worker runs each task's runs
in the task's own loop), the tasks of the runs executing here, their cancel signals, the
conversations being driven, and the gates of runs started in a request whose events wait
for their stream to subscribe. Nothing else in the process keeps run state.

Callers never use it directly: the run service (`services.run_start`, `run_resume`,
`run_cancel`, `message_send`) does. What executing means (claim a queued run, drive the
engine, enqueue a Celery task) is given to it once by the app's `ready()` (`install`), so
the service layer does not import the runner or the Celery tasks.
"""

import asyncio
import contextvars
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

STREAM_GATE_SECONDS = 5.0  # a stream that never subscribes does not hold its run longer

Reservation = tuple[int, int, int]


@dataclass(frozen=True)
class ExecutorPorts:
    """What the executor calls to execute (given by the app's `ready()`)."""

    # Claim the conversation's next queued run and execute it; False when there was none.
    run_next: Callable[[uuid.UUID], Awaitable[bool]]
    # Claim a paused run whose decisions are stored and execute it; its final status.
    resume: Callable[[uuid.UUID], Awaitable[str | None]]
    # Execute a run the service already started (status running, cursors reserved).
    execute_started: Callable[[Any, Reservation, Awaitable[None]], Awaitable[None]]
    # Hand the conversation (or a paused run) to a Celery worker.
    enqueue: Callable[[uuid.UUID, uuid.UUID | None], None]
    # Called on the loop once bound (e.g. let SDK clients be shared on it).
    on_bind: Callable[[], None] = lambda: None


class RunExecutor:
    """See the module docstring. All state is touched on the bound loop only; the methods
    meant for other threads say so."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ports: ExecutorPorts | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cancels: dict[uuid.UUID, asyncio.Event] = {}
        self._pokes: dict[uuid.UUID, asyncio.Event] = {}
        self._driving: set[uuid.UUID] = set()
        self._wake: set[uuid.UUID] = set()
        self._reservations: dict[uuid.UUID, Reservation] = {}
        self._gates: dict[uuid.UUID, asyncio.Event] = {}

    # --- setup ---------------------------------------------------------------------------

    def install(self, ports: ExecutorPorts) -> None:
        self._ports = ports

    @property
    def ports(self) -> ExecutorPorts:
        assert self._ports is not None, "the conversations app is not ready"
        return self._ports

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make `loop` (the ASGI server's, called on it) the loop interactive runs execute
        on. Idempotent; a new loop (a restarted server in the same process) replaces it."""
        if self._loop is loop:
            return
        self._loop = loop
        self._reset()
        if self._ports is not None:
            self._ports.on_bind()

    def unbind_loop(self) -> None:
        """The server is stopping: runs are no longer started here."""
        self._loop = None

    def _reset(self) -> None:
        self._tasks = set()
        self._cancels = {}
        self._pokes = {}
        self._driving = set()
        self._wake = set()
        self._reservations = {}
        self._gates = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The bound loop if it is running (from any thread), else None."""
        loop = self._loop
        return loop if loop is not None and loop.is_running() else None

    def on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def can_start_here(self, *, background: bool = False) -> bool:
        """Whether an interactive run can execute in this process (a bound, running loop)."""
        return not background and self.loop is not None

    def _call(self, function: Callable[[], None]) -> None:
        """Run `function` on the bound loop: now when on it, else soon (from any thread)."""
        loop = self.loop
        assert loop is not None
        if self.on_loop():
            function()
        else:
            loop.call_soon_threadsafe(function)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` as a task of the bound loop (from any thread). A fresh context: the
        run must not inherit the request's context (its request id, its executor)."""

        def create() -> None:
            assert self._loop is not None
            task = self._loop.create_task(coro, context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._call(create)

    # --- starting ------------------------------------------------------------------------

    def start(self, conversation_id: uuid.UUID, *, background: bool = False) -> None:
        """Make sure the conversation's next queued run executes: on the bound loop, else
        (and for background runs) in a Celery worker. Call after commit."""
        if self.can_start_here(background=background):
            self.spawn(self.drive(conversation_id))
        else:
            self.ports.enqueue(conversation_id, None)

    def resume(self, conversation_id: uuid.UUID, run_id: uuid.UUID) -> None:
        """Execute a paused run whose decisions were stored (then what is queued)."""
        if self.can_start_here():
            self.spawn(self.drive_resumed(run_id, conversation_id))
        else:
            self.ports.enqueue(conversation_id, run_id)

    async def drive(self, conversation_id: uuid.UUID) -> None:
        """Execute the conversation's queued runs one after the other (on the caller's
        loop: the bound one, or a Celery task's)."""
        if conversation_id in self._driving:
            self._wake.add(conversation_id)  # the loop below looks again before it stops
            return
        self._driving.add(conversation_id)
        try:
            while True:
                self._wake.discard(conversation_id)
                if not await self.ports.run_next(conversation_id):
                    if conversation_id in self._wake:
                        continue
                    return
        finally:
            self._driving.discard(conversation_id)

    async def drive_resumed(self, run_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
        status = await self.ports.resume(run_id)
        if status is not None and status != "requires_action":
            await self.drive(conversation_id)

    def hold(self, run_id: uuid.UUID, reservation: Reservation) -> None:
        """Keep the cursors reserved for a run started in a request (`prestart` takes them)."""
        self._reservations[run_id] = reservation

    def prestart(self, run: Any) -> None:
        """Execute `run`, started (status running) in the service's transaction; call after
        commit. It runs at once; its events reach this process's streams once its stream
        subscribed (`stream_subscribed`, at most STREAM_GATE_SECONDS); then whatever was
        queued behind it."""
        reservation = self._reservations.pop(run.id)

        def create() -> None:
            gate = self._gates[run.id] = asyncio.Event()

            async def opened() -> None:
                try:
                    await asyncio.wait_for(gate.wait(), timeout=STREAM_GATE_SECONDS)
                except TimeoutError:
                    pass  # no stream (the client left): run anyway, events are in the log
                finally:
                    self._gates.pop(run.id, None)

            async def go() -> None:
                await self.ports.execute_started(run, reservation, opened())
                await self.drive(run.conversation_id)

            self.spawn(go())

        self._call(create)

    def stream_subscribed(self, run_id: uuid.UUID) -> None:
        """A stream of the run is subscribed: let a prestarted run go (from any thread)."""
        if self.loop is None:
            return

        def release() -> None:
            gate = self._gates.get(run_id)
            if gate is not None:
                gate.set()

        self._call(release)

    # --- cancelling ----------------------------------------------------------------------

    def cancel_signal(self, run_id: uuid.UUID) -> asyncio.Event:
        """The cancel signal of a run executing in this process (made on first use)."""
        return self._cancels.setdefault(run_id, asyncio.Event())

    def poke_signal(self, run_id: uuid.UUID) -> asyncio.Event:
        """Set when something about a run executing here changed (e.g. a message was
        queued behind it): its heartbeat looks at once instead of at its next beat."""
        return self._pokes.setdefault(run_id, asyncio.Event())

    def poke(self, run_id: uuid.UUID) -> None:
        """Set a run's poke signal if it executes in this process (from any thread)."""
        event = self._pokes.get(run_id)
        if event is not None and self.loop is not None:
            self._call(event.set)

    def forget(self, run_id: uuid.UUID) -> None:
        """The run stopped executing here."""
        self._cancels.pop(run_id, None)
        self._pokes.pop(run_id, None)

    def cancel(self, run_id: uuid.UUID) -> None:
        """Tell a run executing in this process to stop (from any thread). Runs elsewhere
        see their `cancel_requested` flag at their next heartbeat."""
        event = self._cancels.get(run_id)
        if event is None:
            return
        if self.loop is not None:
            self._call(event.set)
        else:
            event.set()  # a Celery task's loop: the run polls at its heartbeat as well

    # --- for operators and the benchmark ---------------------------------------------------

    def running(self) -> int:
        return len(self._tasks)


executor = RunExecutor()
