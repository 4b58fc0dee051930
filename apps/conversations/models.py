from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.conversations.choices import (
    ACTIVE_STATUSES,
    ConversationSource,
    Rating,
    Role,
    RunKind,
    RunStatus,
)
from apps.conversations.choices import (
    TERMINAL_STATUSES as RUN_TERMINAL_STATUSES,
)
from apps.core.jobs import Job
from apps.core.models import BaseModel


class Conversation(BaseModel):
    """A thread between a user and an agent: the context boundary of its runs."""

    workspace = models.ForeignKey(
        "users.Workspace", on_delete=models.CASCADE, related_name="conversations"
    )
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    source = models.CharField(
        max_length=16, choices=ConversationSource.choices, default=ConversationSource.CHAT
    )
    # Counter of message positions (`Message.seq`), bumped with F() in the transaction.
    message_seq = models.BigIntegerField(default=0)
    # High-water mark of event cursors handed out: a publisher reserves blocks above it
    # before using them, so cursors published live but lost in a crash are never reused.
    cursor_reserved = models.BigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "user", "-created_at"])]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Run(Job, BaseModel):
    """One execution of the agent in a conversation (one turn, many model/tool calls).

    A job of `apps.core.jobs`: claimed by the process that executes it (`worker_id`), kept
    alive by its heartbeat, ended once with a reason; a running run whose heartbeat stopped
    ends `interrupted` (services.RUN_JOB_KIND)."""

    # The statuses apps.core.jobs reads (held by a process / final).
    RUNNING_STATUSES: ClassVar[frozenset[str]] = frozenset({RunStatus.RUNNING})
    TERMINAL_STATUSES: ClassVar[frozenset[str]] = frozenset(RUN_TERMINAL_STATUSES)

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="runs")
    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.SEND)
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    # The user message this run answers (set when the run starts for a queued message).
    message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A queued message's content, materialized as a Message when its run starts.
    pending_input = models.JSONField(default=dict, blank=True)
    # Higher first, then oldest first: "promote" moves a queued message to the front.
    priority = models.IntegerField(default=0)
    background = models.BooleanField(default=False)
    pending_approvals = models.JSONField(default=list, blank=True)
    # What a protocol client gave this run beside its message (the AG-UI endpoint): its
    # own tools offered to the model ("tools": [{name, description, parameters}]) and
    # ambient context ("context": [{description, value}], "state": any JSON).
    client_input = models.JSONField(default=dict, blank=True)
    decisions = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    answer_message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="conversation_one_active_run",
            )
        ]
        indexes = [models.Index(fields=["conversation", "status", "-priority", "created_at"])]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"


class Message(BaseModel):
    """One message of a conversation in OpenAI shape (user, assistant, tool)."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    seq = models.BigIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    # A string, or a list of parts ({"type": "text"|"image_url", ...}) for user messages.
    content = models.JSONField(default=str, blank=True)
    text = models.TextField(blank=True, help_text="Plain text of the content, for search.")
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=128, blank=True)
    name = models.CharField(max_length=128, blank=True)
    attachments = models.JSONField(default=list, blank=True)
    citations = models.JSONField(default=list, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Set when an edit or a regeneration replaced this message (kept for audit).
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique")
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq}"


class RunEvent(models.Model):
    """The durable event log. A row is one event, or a batch of consecutive deltas of one
    type (`cursor`..`cursor_end`, `data.batch` holding each event's data)."""

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(Run, null=True, on_delete=models.CASCADE, related_name="events")
    cursor = models.BigIntegerField()
    cursor_end = models.BigIntegerField()
    type = models.CharField(max_length=32)
    data = models.JSONField(default=dict)
    ts = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "cursor"], name="run_event_cursor_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} @{self.cursor}"


class MessageFeedback(BaseModel):
    """A user's rating (and comment) of one answer."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.CharField(max_length=8, choices=Rating.choices)
    comment = models.TextField(blank=True)

    class Meta:
        verbose_name = "message feedback"
        verbose_name_plural = "message feedback"
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="feedback_one_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.rating} on {self.message_id}"


class ShareLink(BaseModel):
    """A public, read-only link to a conversation; revocable."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="shares")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    token = models.CharField(max_length=64, unique=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"share of {self.conversation_id}"


class StreamTicket(BaseModel):
    """A short-lived, single-use credential for a browser EventSource (no headers)."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ticket for {self.conversation_id}"
