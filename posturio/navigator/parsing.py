"""Bytes in, structured text out: the "parse" step of Navigator's pipeline.

`parse()` turns one fetched document (bytes plus whatever name and media type the source
knows) into a `ParsedDocument`: a title and sections, each with the heading path it sits
under and, for PDFs, the page it came from. Chunking and citations are built on that
structure, so it is kept even where the text is plain.

Anything that cannot be indexed (binary, corrupt, too big, undecodable, empty) raises
`ParseError` with a reason the worker stores as that document's failure; parsing never
lets a library's own exception escape, because one bad file must not fail a source.
"""

from __future__ import annotations

import codecs
import html as html_lib
import io
import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import charset_normalizer
import pypdf
import trafilatura
from lxml import etree
from lxml import html as lxml_html
from markdown_it import MarkdownIt

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DocumentKind",
    "ParseError",
    "ParsedDocument",
    "Section",
    "decode_text",
    "detect_kind",
    "parse",
]

DocumentKind = Literal["markdown", "text", "html", "pdf", "code"]

# 50 MiB: generous for documentation, far below what would hurt a worker's memory
# (a parsed PDF can take several times its size in Python objects).
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

# pypdf and trafilatura log every oddity of a malformed input at WARNING; the failure
# that matters reaches the caller as a ParseError, so their chatter is turned down.
for _noisy in ("pypdf", "trafilatura", "htmldate"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)


class ParseError(Exception):
    """A document that cannot be indexed; `reason` is meant for people, `code` for code."""

    def __init__(self, reason: str, *, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading path (outermost heading first)."""

    heading_path: tuple[str, ...]
    text: str
    page: int | None = None  # 1-based PDF page, kept so answers can cite it


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    title: str
    kind: DocumentKind
    sections: tuple[Section, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


# ---------------------------------------------------------------------------------------
# Kind detection

_MARKDOWN_EXT = {".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdx"}
_HTML_EXT = {".html", ".htm", ".xhtml", ".shtml"}
_TEXT_EXT = {".txt", ".text", ".rst", ".adoc", ".asciidoc", ".org", ".log", ".csv", ".tsv"}
# Source and configuration files: indexed verbatim, titled by their path.
_CODE_EXT = {
    ".py",
    ".pyi",
    ".js",
    ".mjs",
    ".cjs",
    ".jsx",
    ".ts",
    ".tsx",
    ".go",
    ".rs",
    ".java",
    ".kt",
    ".kts",
    ".scala",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".cxx",
    ".hpp",
    ".hh",
    ".cs",
    ".rb",
    ".php",
    ".swift",
    ".m",
    ".mm",
    ".sh",
    ".bash",
    ".zsh",
    ".fish",
    ".ps1",
    ".sql",
    ".r",
    ".lua",
    ".pl",
    ".pm",
    ".ex",
    ".exs",
    ".erl",
    ".hs",
    ".ml",
    ".mli",
    ".clj",
    ".dart",
    ".vue",
    ".svelte",
    ".css",
    ".scss",
    ".less",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".ini",
    ".cfg",
    ".conf",
    ".xml",
    ".proto",
    ".graphql",
    ".tf",
    ".hcl",
    ".gradle",
    ".cmake",
    ".mk",
    ".dockerfile",
    ".env.example",
}
_CODE_NAMES = {"makefile", "dockerfile", "jenkinsfile", "rakefile", "gemfile", "justfile"}

_MEDIA_KIND: dict[str, DocumentKind] = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "text/plain": "text",
    "application/json": "code",
    "application/xml": "code",
    "text/xml": "code",
    "application/yaml": "code",
    "application/x-yaml": "code",
    "text/yaml": "code",
    "text/css": "code",
    "text/javascript": "code",
    "application/javascript": "code",
    "application/toml": "code",
    "application/sql": "code",
}

_HTML_SNIFF = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)


def _split_media_type(media_type: str | None) -> tuple[str | None, str | None]:
    """'text/html; charset=Shift_JIS' -> ('text/html', 'shift_jis')."""
    if not media_type:
        return None, None
    main, _, params = media_type.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'").lower()
    return main.strip().lower() or None, charset


def detect_kind(
    data: bytes, filename: str | None = None, media_type: str | None = None
) -> DocumentKind:
    """Pick the parser. Content beats names for PDF (its magic is unambiguous); otherwise
    a specific media type wins, then the extension, then a look at the first bytes."""
    if _pdf_offset(data) is not None:
        return "pdf"
    main, _ = _split_media_type(media_type)
    name = PurePosixPath(filename or "").name.lower()
    suffix = PurePosixPath(name).suffix
    by_media = _MEDIA_KIND.get(main or "")
    # Servers (and browsers uploading files) label Markdown and code as text/plain or
    # octet-stream, so a generic media type defers to the file's extension.
    if by_media is not None and by_media not in ("text",):
        return by_media
    if suffix in _MARKDOWN_EXT:
        return "markdown"
    if suffix in _HTML_EXT:
        return "html"
    if suffix == ".pdf":
        return "pdf"
    if suffix in _CODE_EXT or name in _CODE_NAMES:
        return "code"
    if suffix in _TEXT_EXT or by_media == "text":
        return "text"
    if main is not None and main.startswith("text/x-"):
        return "code"  # text/x-python, text/x-c, ...
    if _HTML_SNIFF.match(data[:4096].lstrip(codecs.BOM_UTF8)):
        return "html"
    return "text"


# ---------------------------------------------------------------------------------------
# Binary detection and decoding

# Signatures of common non-text files, so the failure names what the file was.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Java class or Mach-O binary"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x00asm", "a WebAssembly module"),
    (b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office document"),
)
_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control bytes that do not occur in text (tab, newlines, form feed and ESC do).
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"
_SNIFF_BYTES = 8192


def _bom(data: bytes) -> tuple[str, int] | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _binary_reason(data: bytes) -> str | None:
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return f"binary file ({what})"
    if data[4:8] == b"ftyp":
        return "binary file (an MP4/QuickTime media file)"
    if _bom(data) is not None:
        return None  # UTF-16/32 text is full of NUL bytes, legitimately
    sample = data[:_SNIFF_BYTES]
    if b"\x00" in sample:
        return "binary file (contains NUL bytes)"
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    if controls > len(sample) * 0.05:
        return "binary file (too many control characters)"
    return None


# Labels whose everyday meaning is a wider Windows code page: browsers decode them that
# way (WHATWG Encoding Standard), and real pages labelled ISO-8859-1 or Shift_JIS use
# the extra characters, which Python's strict codecs would reject.
_ENCODING_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "utf8": "utf-8",
    "unicode": "utf-16",
}

_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_:.()+-]+)""", re.I)


def _codec(label: str | None) -> str | None:
    """A Python codec name for a declared label, or None if unknown."""
    if not label:
        return None
    label = label.strip().lower()
    label = _ENCODING_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _strict(data: bytes, codec: str | None) -> str | None:
    if codec is None:
        return None
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def decode_text(data: bytes, declared: str | None = None, *, html: bool = False) -> str:
    """Decode text whose encoding may be declared, misdeclared or not declared at all.

    Order: a byte-order mark (unambiguous), then the transport's declaration, then an
    HTML <meta> declaration, then UTF-8, then statistical detection; each is tried
    strictly so that a wrong declaration falls through instead of producing mojibake.
    Raises ParseError when nothing fits.
    """
    bom = _bom(data)
    if bom is not None:
        encoding, skip = bom
        try:
            return data[skip:].decode(encoding)
        except UnicodeDecodeError:
            pass  # a BOM followed by garbage: let the other means decide
    candidates = [_codec(declared)]
    if html:
        meta = _META_CHARSET.search(data[:4096])
        if meta is not None:
            candidates.append(_codec(meta.group(1).decode("ascii", "replace")))
    candidates.append("utf-8")
    for codec in dict.fromkeys(c for c in candidates if c):
        # A "utf-16" declaration on a page without a BOM is nearly always wrong (the
        # bytes reached us through an ASCII-compatible <meta>): skip it.
        if codec.startswith(("utf-16", "utf-32")) and bom is None:
            continue
        text = _strict(data, codec)
        if text is not None:
            return text
    best = charset_normalizer.from_bytes(data[: 4 * 1024 * 1024]).best()
    if best is not None and best.encoding:
        text = _strict(data, best.encoding)
        if text is not None:
            return text
    # Last resort: a document that is almost UTF-8 (or almost its declared encoding) with
    # a few broken bytes is still worth indexing; one that needs many replacements is not.
    for codec in dict.fromkeys(c for c in (*candidates, "utf-8") if c):
        text = data.decode(codec, errors="replace")
        if text.count("\ufffd") <= max(1, len(text) // 1000):
            return text
    raise ParseError("undecodable text: no encoding fits its bytes", code="undecodable")


def _clean(text: str) -> str:
    """Normalise newlines and drop the control characters that survive decoding."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    return re.sub(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", "", text)


# ---------------------------------------------------------------------------------------
# Entry point


def parse(
    data: bytes,
    *,
    filename: str | None = None,
    media_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ParsedDocument:
    """Parse one document. `filename` may be a path or URL path (it names code files and
    is the title of last resort); `media_type` may carry a charset parameter."""
    if len(data) > max_bytes:
        raise ParseError(
            f"file too large: {len(data):,} bytes, the limit is {max_bytes:,}", code="too_large"
        )
    if not data.strip():
        raise ParseError("empty document", code="empty")
    kind = detect_kind(data, filename, media_type)
    if kind == "pdf":
        doc = _parse_pdf(data, filename)
    else:
        reason = _binary_reason(data)
        if reason is not None:
            raise ParseError(reason, code="binary")
        _, charset = _split_media_type(media_type)
        text = _clean(decode_text(data, charset, html=kind == "html"))
        if kind == "markdown":
            doc = _parse_markdown(text, filename)
        elif kind == "html":
            doc = _parse_html(text, filename)
        elif kind == "code":
            doc = ParsedDocument(
                title=filename or _first_line(text),
                kind="code",
                sections=(Section((), text.strip("\n")),),
            )
        else:
            doc = ParsedDocument(
                title=_fallback_title(filename, text),
                kind="text",
                sections=(Section((), text.strip()),),
            )
    sections = tuple(s for s in doc.sections if s.text.strip())
    if not sections:
        raise ParseError("no text to index in this document", code="no_text")
    return ParsedDocument(doc.title, doc.kind, sections)


def _first_line(text: str, limit: int = 120) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return "Untitled"


def _fallback_title(filename: str | None, text: str) -> str:
    if filename:
        name = PurePosixPath(filename).name
        if name:
            return name
    return _first_line(text)


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------------------
# Markdown

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)
# CommonMark without its HTML rendering: we only need the block structure, with line maps.
_MARKDOWN = MarkdownIt("commonmark")


def _parse_markdown(text: str, filename: str | None) -> ParsedDocument:
    front_title = None
    match = _FRONT_MATTER.match(text)
    if match is not None:
        title_match = _FRONT_TITLE.search(match.group(1))
        if title_match is not None:
            front_title = title_match.group(1).strip("\"'")
        # Keep line numbers stable for the token maps: blank the front matter out.
        text = "\n" * match.group(0).count("\n") + text[match.end() :]
    lines = text.split("\n")
    tokens = _MARKDOWN.parse(text)
    # (start line, end line, level, heading text) for every heading, in order. The parser
    # knows which '#' lines are headings and which sit inside code fences.
    headings: list[tuple[int, int, int, str]] = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map is not None:
            inline = tokens[i + 1]
            heading = "".join(
                " " if child.type in ("softbreak", "hardbreak") else child.content
                for child in inline.children or ()
                if child.type in ("text", "code_inline", "softbreak", "hardbreak")
            )
            headings.append((token.map[0], token.map[1], int(token.tag[1]), _collapse(heading)))
    sections: list[Section] = []
    path: list[tuple[int, str]] = []  # (level, heading) stack
    start = 0
    for begin, end, level, heading in [*headings, (len(lines), len(lines), 0, "")]:
        body = "\n".join(lines[start:begin]).strip()
        if body:
            sections.append(Section(tuple(h for _, h in path), body))
        if level == 0:
            break
        while path and path[-1][0] >= level:
            path.pop()
        if heading:
            path.append((level, heading))
        start = end
    h1 = next((h for _, _, level, h in headings if level == 1 and h), None)
    title = front_title or h1 or _fallback_title(filename, text)
    return ParsedDocument(title=title, kind="markdown", sections=tuple(sections))


# ---------------------------------------------------------------------------------------
# HTML

_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>", re.I)
_LINE_BREAK = "\u2028"  # stands for <lb/> while whitespace is collapsed
# h1-h4 travel through main-content extraction as paragraphs that start with this mark
# and their level ("␞3␞Memory"): trafilatura drops real headings it judges boilerplate
# (every h2/h3 of a DocBook page), never such a paragraph. A visible symbol nobody writes:
# trafilatura strips invisible characters.
_HEADING_MARK = "\u241e"  # SYMBOL FOR RECORD SEPARATOR
_HEADING_TAGS = ("h1", "h2", "h3", "h4")
# A definition list's term travels the same way, marked with this: it becomes the first
# line of its definition's paragraph ("max_connections (integer)" then what it does), so
# the term and its meaning are one passage.
_TERM_MARK = "\u241f"  # SYMBOL FOR UNIT SEPARATOR
# Documentation generators end headings with a permalink: "¶" (Sphinx, MkDocs), "#"
# (DocBook, since PostgreSQL 16).
_PERMALINK_TAIL = re.compile(r"[\s¶#]+$")


def _parse_html(text: str, filename: str | None) -> ParsedDocument:
    # lxml refuses a str that still declares a byte encoding; we already decoded it.
    text = _XML_DECLARATION.sub("", text, count=1)
    title_match = _TITLE.search(text[:65536])
    title = _collapse(html_lib.unescape(title_match.group(1))) if title_match else ""
    try:
        # trafilatura finds the main content and drops navigation, headers, footers and
        # other boilerplate; its XML output keeps lists, tables and the marked headings
        # (see _HEADING_MARK), from which the heading path is rebuilt here.
        extracted = trafilatura.extract(
            _mark_headings(text),
            output_format="xml",
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            include_formatting=False,
            with_metadata=False,
            favor_recall=True,
            deduplicate=False,
        )
    except Exception:  # any failure inside the extractor becomes the fallback below
        extracted = None
    sections: list[Section] = []
    if extracted:
        try:
            root = etree.fromstring(extracted.encode("utf-8"))
        except etree.XMLSyntaxError:
            root = None
        if root is not None:
            sections = _sections_from_xml(root)
    if not sections:
        # Pages too short or too odd for main-content extraction: take all visible text.
        try:
            fallback = trafilatura.html2txt(text) or ""
        except Exception:
            fallback = ""
        if fallback.strip():
            sections = [Section((), fallback.strip())]
    if not title:
        first = next((s.heading_path[0] for s in sections if s.heading_path), None)
        title = first or _fallback_title(filename, "\n".join(s.text for s in sections))
    return ParsedDocument(title=title, kind="html", sections=tuple(sections))


def _mark_headings(text: str) -> str:
    """The page with each h1-h4 replaced by a marked paragraph of its text, and each
    definition list's terms (<dt>) by term-marked paragraphs before their definitions
    (the page as it was when lxml cannot read it)."""
    try:
        tree = lxml_html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return text
    for heading in list(tree.iter(*_HEADING_TAGS)):
        level = str(heading.tag)[1]  # h1 … h4
        _replace(heading, f"{_HEADING_MARK}{level}{_HEADING_MARK}{heading.text_content()}")
    # A definition list (DocBook's variablelist of settings, AsciiDoc's options, Sphinx's
    # API entries) reaches trafilatura as plain blocks: as a list it came out as items
    # where a term ("max_connections (integer)") and its definition were two unrelated
    # bullets, and a term with a permalink lost it to neither.
    for term in list(tree.iter("dt")):
        _replace(term, f"{_TERM_MARK}{term.text_content()}")
    for element in list(tree.iter("dl", "dd")):
        element.tag = "div"
    return lxml_html.tostring(tree, encoding="unicode")


def _replace(element: etree._Element, marked_text: str) -> None:
    parent = element.getparent()
    if parent is None:
        return
    marked = lxml_html.Element("p")
    marked.text = marked_text
    marked.tail = element.tail
    parent.replace(element, marked)


def _heading(element: etree._Element) -> tuple[int, str] | None:
    """(level, text) of a marked heading paragraph (or one trafilatura kept as <head>)."""
    if element.tag == "head":
        rend = element.get("rend") or "h2"
        level = int(rend[1]) if len(rend) == 2 and rend[1].isdigit() else 2
        return level, _PERMALINK_TAIL.sub("", _collapse(_inline_text(element)))
    if element.tag != "p":
        return None
    text = _inline_text(element)
    if not text.startswith(_HEADING_MARK):
        return None
    digit, _, heading = text[1:].partition(_HEADING_MARK)
    return int(digit), _PERMALINK_TAIL.sub("", _collapse(heading))


def _term(element: etree._Element) -> str | None:
    """The text of a term-marked paragraph (see _TERM_MARK), None for any other element."""
    if element.tag != "p":
        return None
    text = _inline_text(element)
    if not text.startswith(_TERM_MARK):
        return None
    return _PERMALINK_TAIL.sub("", _collapse(text[1:]))


def _inline_text(element: etree._Element) -> str:
    parts: list[str] = [element.text or ""]
    for child in element:
        parts.append(_LINE_BREAK if child.tag == "lb" else _inline_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _block_text(element: etree._Element, depth: int = 0) -> str:
    tag = element.tag
    if tag == "code":
        return "".join(element.itertext()).strip("\n")
    if tag == "list":
        ordered = element.get("rend") == "ol"
        lines: list[str] = []
        number = 0
        for item in element:
            if item.tag != "item":
                continue
            number += 1
            nested = [c for c in item if c.tag == "list"]
            for c in nested:
                item.remove(c)  # rendered below, indented, after the item's own text
            marker = f"{number}." if ordered else "-"
            own = _collapse(_inline_text(item).replace(_LINE_BREAK, " "))
            lines.append(f"{'  ' * depth}{marker} {own}".rstrip())
            lines.extend(_block_text(c, depth + 1) for c in nested)
        return "\n".join(line for line in lines if line.strip())
    if tag == "table":
        rows = []
        for row in element.iter("row"):
            cells = [_collapse(_inline_text(cell)) for cell in row if cell.tag == "cell"]
            if any(cells):
                rows.append(" | ".join(cells))
        return "\n".join(rows)
    text = re.sub(r"\s+", " ", _inline_text(element))
    return "\n".join(line.strip() for line in text.split(_LINE_BREAK)).strip()


def _sections_from_xml(root: etree._Element) -> list[Section]:
    main = root.find("main")
    if main is None:
        main = root
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    blocks: list[str] = []
    terms: list[str] = []  # terms waiting for their definition's first block

    def add(block: str) -> None:
        if terms and block:
            block = "\n".join([*terms, block])
            terms.clear()
        blocks.append(block)

    def flush() -> None:
        if terms:
            blocks.append("\n".join(terms))
            terms.clear()
        body = "\n\n".join(b for b in blocks if b)
        if body.strip():
            sections.append(Section(tuple(h for _, h in path), body))
        blocks.clear()

    def walk(parent: etree._Element) -> None:
        for element in parent:
            if element.tag == "div":  # a section wrapper: its headings start sections
                walk(element)
                continue
            term = _term(element)
            if term is not None:
                if term:
                    terms.append(term)
                continue
            heading = _heading(element)
            if heading is None:
                add(_block_text(element))
                continue
            flush()
            level, name = heading
            while path and path[-1][0] >= level:
                path.pop()
            if name:
                path.append((level, name))

    walk(main)
    flush()
    return sections


# ---------------------------------------------------------------------------------------
# PDF


def _pdf_offset(data: bytes) -> int | None:
    # The header may follow a little junk (the PDF spec tolerates up to 1 KiB of it).
    offset = data.find(b"%PDF-", 0, 1024)
    return None if offset < 0 else offset


def _parse_pdf(data: bytes, filename: str | None) -> ParsedDocument:
    offset = _pdf_offset(data)
    if offset is None:
        raise ParseError("corrupt PDF: no %PDF header", code="corrupt_pdf")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data[offset:]), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("encrypted PDF: a password is needed", code="encrypted_pdf")
        pages = list(reader.pages)
    except ParseError:
        raise
    except Exception as exc:  # pypdf raises many types on broken files; all mean "corrupt"
        raise ParseError(f"corrupt PDF: {_short(exc)}", code="corrupt_pdf") from None
    if not pages:
        raise ParseError("corrupt PDF: no pages", code="corrupt_pdf")
    outline = _outline_by_page(reader)
    sections: list[Section] = []
    failures = 0
    path: tuple[str, ...] = ()
    for number, page in enumerate(pages, start=1):
        path = outline.get(number, path)
        try:
            text = page.extract_text() or ""
        except Exception:
            failures += 1
            continue
        text = _clean(text).strip()
        if text:
            sections.append(Section(path, text, page=number))
    if failures == len(pages):
        raise ParseError("corrupt PDF: no page could be read", code="corrupt_pdf")
    if not sections:
        raise ParseError(
            "no extractable text in this PDF (scanned images need OCR)", code="no_text"
        )
    title = ""
    try:
        if reader.metadata is not None and reader.metadata.title:
            title = _collapse(str(reader.metadata.title))
    except Exception:
        title = ""
    if not title:
        title = _fallback_title(filename, sections[0].text)
    return ParsedDocument(title=title, kind="pdf", sections=tuple(sections))


def _outline_by_page(reader: pypdf.PdfReader) -> dict[int, tuple[str, ...]]:
    """Page number -> the outline (bookmark) path in force from that page on.

    Bookmarks are the only headings a PDF reliably has; a broken outline is ignored."""
    found: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list, parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] = parents
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            title = _collapse(str(getattr(item, "title", "") or ""))
            if not title:
                continue
            last = (*parents, title)
            page_index = reader.get_destination_page_number(item)
            if page_index is not None and page_index >= 0:
                found.append((page_index + 1, last))

    try:
        walk(reader.outline, ())
    except Exception:
        return {}
    by_page: dict[int, tuple[str, ...]] = {}
    for page, path in sorted(found, key=lambda f: f[0]):  # stable: the last one per page wins
        by_page[page] = path
    return by_page


def _short(exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    return message if len(message) <= 200 else message[:200] + "…"
