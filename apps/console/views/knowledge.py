"""Knowledge pages: bases, multi-file upload with live per-document status (htmx polls
the documents table while any is in progress), and a search test."""

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.console.access import console_view, error_message
from apps.console.forms import KnowledgeBaseForm
from apps.core.exceptions import ApplicationError
from apps.knowledge.choices import ACTIVE_STATUSES
from apps.knowledge.selectors import (
    access_knowledge_base,
    document_list,
    knowledge_base_list,
    knowledge_search,
)
from apps.knowledge.services import IncomingFile, documents_add, knowledge_base_create

MAX_FILES_PER_UPLOAD = 50


@console_view
@require_http_methods(["GET", "POST"])
def knowledge_index(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = KnowledgeBaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            kb = knowledge_base_create(actor=actor, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_error("name", error_message(exc))
        else:
            messages.success(request, f"Knowledge base “{kb.name}” created.")
            return redirect("console:knowledge_base", knowledge_base_id=kb.id)
    bases = list(knowledge_base_list(actor=actor).order_by("name"))
    return render(
        request,
        "console/knowledge/index.html",
        {"bases": bases, "form": form},
        status=400 if form.errors else 200,
    )


def _documents_context(kb_id: uuid.UUID, request: HttpRequest) -> dict:
    actor = request.actor  # type: ignore[attr-defined]
    kb = access_knowledge_base(actor=actor, knowledge_base_id=kb_id)
    documents = list(document_list(knowledge_base=kb).order_by("-created_at")[:200])
    busy = any(d.status in ACTIVE_STATUSES for d in documents)
    return {"kb": kb, "documents": documents, "busy": busy}


@console_view
@require_GET
def knowledge_base_detail(request: HttpRequest, knowledge_base_id: uuid.UUID) -> HttpResponse:
    context = _documents_context(knowledge_base_id, request)
    return render(request, "console/knowledge/detail.html", context)


@console_view
@require_GET
def knowledge_documents(request: HttpRequest, knowledge_base_id: uuid.UUID) -> HttpResponse:
    """The documents table (htmx polls it while documents are being processed)."""
    context = _documents_context(knowledge_base_id, request)
    return render(request, "console/knowledge/_documents.html", context)


@console_view
@require_POST
def knowledge_upload(request: HttpRequest, knowledge_base_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    kb = access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
    uploads = request.FILES.getlist("files")
    error = ""
    if not uploads:
        error = "files: choose at least one file."
    elif len(uploads) > MAX_FILES_PER_UPLOAD:
        error = f"files: at most {MAX_FILES_PER_UPLOAD} files at once."
    else:
        files = [
            IncomingFile(name=f.name or "file", data=f.read(), content_type=f.content_type or "")
            for f in uploads
        ]
        try:
            documents_add(actor=actor, knowledge_base=kb, files=files)
        except ApplicationError as exc:
            error = error_message(exc)
    context = _documents_context(kb.id, request)
    context["upload_error"] = error
    return render(
        request, "console/knowledge/_documents.html", context, status=400 if error else 200
    )


@console_view
@require_GET
def knowledge_search_test(request: HttpRequest, knowledge_base_id: uuid.UUID) -> HttpResponse:
    """Search the base as an agent would; scores shown."""
    actor = request.actor  # type: ignore[attr-defined]
    kb = access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
    query = request.GET.get("q", "").strip()[:1000]
    hits, error = [], ""
    if query:
        try:
            hits = list(
                knowledge_search(
                    workspace_id=actor.workspace_id,
                    knowledge_base_ids=[kb.id],
                    query=query,
                    knowledge_bases=[kb],
                )
            )
        except ApplicationError as exc:  # provider errors of retrieval included
            error = error_message(exc)
    return render(
        request, "console/knowledge/_hits.html", {"hits": hits, "query": query, "error": error}
    )
