from apps.core.exceptions import ApplicationError, Conflict, NotFound, ValidationFailed


class KnowledgeBaseNotFound(NotFound):
    code = "knowledge_base_not_found"
    default_message = "Knowledge base not found."


class DocumentNotFound(NotFound):
    code = "document_not_found"
    default_message = "Document not found."


class ChunkNotFound(NotFound):
    code = "chunk_not_found"
    default_message = "Chunk not found."


class BatchNotFound(NotFound):
    code = "batch_not_found"
    default_message = "Upload batch not found."


class KnowledgeBaseNameTaken(Conflict):
    code = "knowledge_base_name_taken"
    default_message = "A knowledge base with this name already exists in the workspace."


class DuplicateDocument(Conflict):
    code = "duplicate_document"
    default_message = "This file is already in the knowledge base (send override=true to replace)."


class DocumentBusy(Conflict):
    code = "document_busy"
    default_message = "The document is being processed; try again when it is done."


class UnsupportedFileType(ValidationFailed):
    code = "unsupported_file_type"
    default_message = "This type of file is not supported."


class EmptyDocument(ValidationFailed):
    code = "empty_document"
    default_message = "The document is empty."


class FileTooLarge(ApplicationError):
    code = "file_too_large"
    status = 413
    default_message = "The file is larger than the knowledge base limit."


class TooManyFiles(ValidationFailed):
    code = "too_many_files"
    default_message = "Too many files in one upload."


class EmbeddingUnavailable(ApplicationError):
    code = "embedding_unavailable"
    status = 400
    default_message = "Vector search needs an embedding model; none is configured."


class UrlImportFailed(ApplicationError):
    code = "url_import_failed"
    status = 400
    default_message = "The URL could not be imported."


class ParseError(Exception):
    """A document cannot be turned into text; the message is shown to the user as is."""
