"""Split text into passages: by headings (Markdown-style) then paragraphs, packed up to a
token limit with an overlap. Token counts are an offline approximation (words and
punctuation marks), so no tokenizer file is ever downloaded."""

import re
from dataclasses import dataclass, field

_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_RE = re.compile(r"(?<=[.!?。！？])\s+")


def count_tokens(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


@dataclass
class Piece:
    text: str
    tokens: int
    headings: tuple[str, ...] = ()


@dataclass
class ChunkDraft:
    content: str
    token_count: int
    metadata: dict[str, object] = field(default_factory=dict)


def _paragraphs(text: str, *, by_headings: bool) -> list[Piece]:
    pieces: list[Piece] = []
    trail: list[tuple[int, str]] = []  # (depth, title) of the enclosing headings
    buffer: list[str] = []

    def flush() -> None:
        block = "\n".join(buffer).strip()
        buffer.clear()
        if block:
            pieces.append(Piece(block, count_tokens(block), tuple(t for _, t in trail)))

    for line in text.split("\n"):
        match = _HEADING_RE.match(line) if by_headings else None
        if match:
            flush()
            depth = len(match.group(1))
            while trail and trail[-1][0] >= depth:
                trail.pop()
            trail.append((depth, match.group(2).strip()))
            buffer.append(line.strip())
            flush()
            continue
        if not line.strip():
            flush()
            continue
        buffer.append(line.rstrip())
    flush()
    return pieces


def _split_long(piece: Piece, size: int) -> list[Piece]:
    """Cut a paragraph longer than `size` tokens at sentences, then at words."""
    if piece.tokens <= size:
        return [piece]
    out: list[Piece] = []
    for sentence in _SENTENCE_RE.split(piece.text):
        tokens = count_tokens(sentence)
        if tokens <= size:
            out.append(Piece(sentence, tokens, piece.headings))
            continue
        words = sentence.split()
        current: list[str] = []
        current_tokens = 0
        for word in words:
            word_tokens = max(1, count_tokens(word))
            if current and current_tokens + word_tokens > size:
                out.append(Piece(" ".join(current), current_tokens, piece.headings))
                current, current_tokens = [], 0
            current.append(word)
            current_tokens += word_tokens
        if current:
            out.append(Piece(" ".join(current), current_tokens, piece.headings))
    return out


def _tail(text: str, tokens: int) -> str:
    """The last `tokens` tokens of `text` (whole words), for the overlap."""
    if tokens <= 0:
        return ""
    # Only the end of the text matters: look at a few words more than needed.
    end = text[-(tokens * 24) :]
    words = end.split()
    if len(end) < len(text) and words:
        words = words[1:]  # maybe cut in half
    out: list[str] = []
    total = 0
    for word in reversed(words):
        total += max(1, count_tokens(word))
        if total > tokens:
            break
        out.append(word)
    return " ".join(reversed(out))


def split_text(*, text: str, size: int, overlap: int, by_headings: bool) -> list[ChunkDraft]:
    """Passages of at most about `size` tokens; consecutive passages of one section share
    up to `overlap` tokens. A heading starts a new passage when splitting by headings."""
    size = max(16, size)
    overlap = max(0, min(overlap, size // 2))
    pieces: list[Piece] = []
    for piece in _paragraphs(text, by_headings=by_headings):
        pieces.extend(_split_long(piece, size))
    drafts: list[ChunkDraft] = []
    current: list[Piece] = []
    current_tokens = 0

    def emit() -> None:
        if not current:
            return
        body = "\n\n".join(p.text for p in current).strip()
        if body:
            metadata: dict[str, object] = {}
            if current[0].headings:
                metadata["headings"] = list(current[0].headings)
            drafts.append(ChunkDraft(body, count_tokens(body), metadata))

    for piece in pieces:
        new_section = by_headings and current and piece.headings != current[-1].headings
        if current and (new_section or current_tokens + piece.tokens > size):
            emit()
            carry = "" if new_section else _tail(current[-1].text, overlap)
            current = []
            current_tokens = 0
            if carry and count_tokens(carry) + piece.tokens <= size:
                current.append(Piece(carry, count_tokens(carry), piece.headings))
                current_tokens = current[0].tokens
        current.append(piece)
        current_tokens += piece.tokens
    emit()
    return drafts
