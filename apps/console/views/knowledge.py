"""Knowledge pages: bases, multi-file upload and URL import with live per-document
status (htmx polls the documents table while any is in progress) and redo, a document's
passages (paginated, edited in place: new text is embedded again), and a search test
with modes, scores and rerank."""

import uuid

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.console.access import console_view, error_message
from apps.console.forms import (
    RERANK_CHOICES,
    ChunkEditForm,
    KnowledgeBaseForm,
    SearchTestForm,
    UrlImportForm,
)
from apps.core.exceptions import ApplicationError, PermissionDenied
from apps.knowledge.choices import ACTIVE_STATUSES, SearchMode
from apps.knowledge.selectors import (
    access_chunk,
    access_document,
    access_knowledge_base,
    chunk_list,
    document_list,
    knowledge_base_list,
    knowledge_search,
)
from apps.knowledge.services import (
    IncomingFile,
    chunk_update,
    document_import_url,
    documents_add,
    documents_redo,
    knowledge_base_create,
)
from apps.providers.services import usage_context
from apps.users.choices import Role

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
    can_edit = actor.has_role(Role.MEMBER)
    return {"kb": kb, "documents": documents, "busy": busy, "can_edit": can_edit}


@console_view
@require_GET
def knowledge_base_detail(request: HttpRequest, knowledge_base_id: uuid.UUID) -> HttpResponse:
    context = _documents_context(knowledge_base_id, request)
    context["search_modes"] = SearchMode.choices
    context["rerank_choices"] = RERANK_CHOICES
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


def _form_errors(form: forms.Form) -> str:
    """A bound form's errors as one line naming each field."""
    return " ".join(
        f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items()
    )


def _search_form(data: object = None) -> SearchTestForm:
    return SearchTestForm(data, modes=list(SearchMode.choices))


@console_view
@require_GET
def knowledge_search_test(request: HttpRequest, knowledge_base_id: uuid.UUID) -> HttpResponse:
    """Search the base as an agent would, in a chosen mode, with or without rerank;
    retrieval and rerank scores shown."""
    actor = request.actor  # type: ignore[attr-defined]
    kb = access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
    form = _search_form(request.GET)
    hits: list = []
    rerank = None
    error, mode = "", kb.search_mode
    if form.is_valid():
        mode = form.cleaned_data["mode"] or kb.search_mode
        try:
            found = knowledge_search(
                workspace_id=actor.workspace_id,
                knowledge_base_ids=[kb.id],
                query=form.cleaned_data["q"],
                top_k=form.cleaned_data["top_k"],
                mode=mode,
                usage=usage_context(actor=actor),
                rerank=form.rerank_value(),
                knowledge_bases=[kb],
            )
        except ApplicationError as exc:  # provider errors of retrieval included
            error = error_message(exc)
        else:
            hits, rerank = list(found), found.rerank
    else:
        error = _form_errors(form)
    context = {
        "hits": hits,
        "query": form.cleaned_data.get("q", "") if form.is_valid() else "",
        "error": error,
        "mode": SearchMode(mode).label,
        "rerank": rerank,
    }
    return render(
        request, "console/knowledge/_hits.html", context, status=400 if form.errors else 200
    )


@console_view
@require_POST
def knowledge_import_url(request: HttpRequest, knowledge_base_id: uuid.UUID) -> HttpResponse:
    """Fetch a URL (through the outbound guard) into a document; the table comes back."""
    actor = request.actor  # type: ignore[attr-defined]
    kb = access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
    form = UrlImportForm(request.POST)
    error = ""
    if not form.is_valid():
        error = _form_errors(form)
    else:
        try:
            document_import_url(
                actor=actor,
                knowledge_base=kb,
                url=form.cleaned_data["url"],
                name=form.cleaned_data["name"],
            )
        except ApplicationError as exc:
            error = error_message(exc)
    context = _documents_context(kb.id, request)
    context["upload_error"] = error
    return render(
        request, "console/knowledge/_documents.html", context, status=400 if error else 200
    )


@console_view
@require_POST
def knowledge_document_redo(
    request: HttpRequest, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
) -> HttpResponse:
    """Ingest a document again (a failed one, or after the base's settings changed)."""
    actor = request.actor  # type: ignore[attr-defined]
    document = access_document(
        actor=actor, knowledge_base_id=knowledge_base_id, document_id=document_id
    )
    documents_redo(actor=actor, documents=[document])  # a viewer: the 403 page
    context = _documents_context(knowledge_base_id, request)
    return render(request, "console/knowledge/_documents.html", context)


CHUNKS_PER_PAGE = 20


@console_view
@require_GET
def knowledge_document(
    request: HttpRequest, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
) -> HttpResponse:
    """A document's passages in order, paginated, each editable."""
    actor = request.actor  # type: ignore[attr-defined]
    document = access_document(
        actor=actor, knowledge_base_id=knowledge_base_id, document_id=document_id
    )
    chunks = chunk_list(document=document).order_by("position", "id")
    page = Paginator(chunks, CHUNKS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"kb": document.knowledge_base, "document": document, "page": page}
    return render(request, "console/knowledge/document.html", context)


@console_view
@require_http_methods(["GET", "POST"])
def knowledge_chunk(
    request: HttpRequest, knowledge_base_id: uuid.UUID, chunk_id: uuid.UUID
) -> HttpResponse:
    """One passage: its editor (htmx swaps it in place); saving embeds new text again."""
    actor = request.actor  # type: ignore[attr-defined]
    chunk = access_chunk(actor=actor, knowledge_base_id=knowledge_base_id, chunk_id=chunk_id)
    if request.method == "GET":
        form = ChunkEditForm(initial={"content": chunk.content, "enabled": chunk.enabled})
        if request.GET.get("view"):  # the editor's Cancel: back to the read-only card
            return render(request, "console/knowledge/_chunk.html", {"chunk": chunk})
        return render(request, "console/knowledge/_chunk_form.html", {"chunk": chunk, "form": form})
    form = ChunkEditForm(request.POST)
    if form.is_valid():
        try:
            chunk = chunk_update(
                actor=actor,
                chunk=chunk,
                content=form.cleaned_data["content"],
                enabled=form.cleaned_data["enabled"],
            )
        except PermissionDenied:
            raise  # a viewer: the 403 page
        except ApplicationError as exc:  # the embedding model's errors
            form.add_error(None, error_message(exc))
        else:
            return render(request, "console/knowledge/_chunk.html", {"chunk": chunk, "saved": True})
    return render(
        request, "console/knowledge/_chunk_form.html", {"chunk": chunk, "form": form}, status=400
    )
