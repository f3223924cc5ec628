# ruff: noqa: RUF001  (Cyrillic, Japanese and typographic text on purpose)
"""Parsing real files built in the test: Markdown, text, code, HTML in legacy encodings,
PDFs written byte by byte, and the inputs that must be refused with a reason."""

from __future__ import annotations

import io
import random

import pypdf
import pytest

from posturio.navigator.parsing import ParseError, detect_kind, parse

# --- a real PDF, by hand -----------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A PDF with one page per entry, each line drawn in Helvetica, plus an Info title."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for lines in pages:
        content_id = len(objects) + 2
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
            ).encode()
        )
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        ops += [f"({_escape(line)}) Tj T*" for line in lines]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info_ref = ""
    if title is not None:
        objects.append(f"<< /Title ({_escape(title)}) /Producer (tests) >>".encode())
        info_ref = f" /Info {len(objects)} 0 R"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info_ref} >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


# --- Markdown, text, code ------------------------------------------------------------------

MARKDOWN = """---
title: Operating Posturio
owner: platform team
---
Read this first.

# Operating Posturio

Posturio is an AI gateway.

```bash
# not a heading: this line is inside a code fence
posturio up
```

## Install *quickly*

Run the installer.

Backups
-------

Back up Postgres nightly.

### Restore

Restore into an empty database.

## Empty section

## Upgrade

Apply migrations.
"""


def test_markdown_sections_follow_headings() -> None:
    doc = parse(MARKDOWN.encode(), filename="docs/operating.md")
    assert doc.kind == "markdown"
    assert doc.title == "Operating Posturio"  # front matter title
    paths = [(s.heading_path, s.text.splitlines()[0]) for s in doc.sections]
    assert paths == [
        ((), "Read this first."),
        (("Operating Posturio",), "Posturio is an AI gateway."),
        (("Operating Posturio", "Install quickly"), "Run the installer."),
        (("Operating Posturio", "Backups"), "Back up Postgres nightly."),
        (("Operating Posturio", "Backups", "Restore"), "Restore into an empty database."),
        (("Operating Posturio", "Upgrade"), "Apply migrations."),
    ]
    assert "# not a heading" in doc.sections[1].text
    assert all(s.page is None for s in doc.sections)


def test_markdown_title_falls_back_to_h1_then_filename() -> None:
    assert parse(b"# Big Title\n\ntext", filename="a.md").title == "Big Title"
    assert parse(b"## Only h2\n\ntext", filename="notes/b.md").title == "b.md"


def test_plain_text_and_utf16_bom() -> None:
    doc = parse("Zeile eins\r\nÄrger über Öl\r\n".encode("utf-16"), filename="notes.txt")
    assert doc.kind == "text"
    assert doc.title == "notes.txt"
    assert doc.sections[0].text == "Zeile eins\nÄrger über Öl"


def test_source_code_is_text_titled_by_path() -> None:
    code = b"def handler(event):\n    # Why: retries are idempotent\n    return event\n"
    doc = parse(code, filename="src/app/handler.py", media_type="application/octet-stream")
    assert doc.kind == "code"
    assert doc.title == "src/app/handler.py"
    assert doc.sections[0].text == code.decode().rstrip("\n")


def test_latin1_label_means_windows_1252() -> None:
    data = b"The \x93quoted\x94 word costs \x80 5."
    doc = parse(data, filename="price.txt", media_type="text/plain; charset=ISO-8859-1")
    assert doc.sections[0].text == "The \u201cquoted\u201d word costs \u20ac 5."


def test_kind_detection() -> None:
    assert detect_kind(b"# x", "README.md", "text/plain") == "markdown"
    assert detect_kind(b"<!DOCTYPE html><html></html>", None, None) == "html"
    assert detect_kind(b"%PDF-1.7 ...", "upload.bin", None) == "pdf"
    assert detect_kind(b"x = 1", None, "text/x-python") == "code"
    assert detect_kind(b"plain words", None, None) == "text"


# --- HTML: main content, legacy and strange encodings -------------------------------------

RUSSIAN_ARTICLE = """
<h1>Руководство по развёртыванию</h1>
<p>Шлюз Posturio работает за обратным прокси-сервером и не хранит состояния между
запросами, поэтому его можно запускать в нескольких экземплярах одновременно. В этом
разделе описано, как подготовить окружение и проверить, что всё работает.</p>
<h2>Требования</h2>
<p>Для работы нужны PostgreSQL с расширением pgvector и сервер Redis, доступный из
каждого экземпляра шлюза. Память: около пятисот мегабайт на экземпляр при обычной
нагрузке, больше во время индексации документов.</p>
<ul><li>PostgreSQL шестнадцатой версии или новее</li><li>Redis седьмой версии</li></ul>
<h2>Проверка</h2>
<p>После запуска откройте страницу состояния и убедитесь, что все проверки зелёные.
Если какая-то проверка красная, посмотрите журнал событий: там указана причина.</p>
"""


def _russian_page(meta: str) -> str:
    return f"""<!DOCTYPE html>
<html><head>{meta}<title>Руководство по развёртыванию</title></head>
<body>
<nav><ul><li><a href="/">Главная</a></li><li><a href="/prices">Цены</a></li>
<li><a href="/contacts">Контакты</a></li><li><a href="/login">Вход</a></li></ul></nav>
<main><article>{RUSSIAN_ARTICLE}</article></main>
<footer><p>Все права защищены. Политика конфиденциальности. Условия использования.</p>
</footer></body></html>"""


def _assert_russian(doc) -> None:
    assert doc.kind == "html"
    assert doc.title == "Руководство по развёртыванию"
    text = doc.text
    assert "расширением pgvector" in text
    assert "- Redis седьмой версии" in text
    # navigation chrome and footer boilerplate are not content
    assert "Контакты" not in text
    assert "Все права защищены" not in text
    paths = [s.heading_path for s in doc.sections]
    assert ("Руководство по развёртыванию", "Требования") in paths
    assert ("Руководство по развёртыванию", "Проверка") in paths


def test_html_windows_1251_declared_in_meta() -> None:
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
    doc = parse(_russian_page(meta).encode("cp1251"), filename="deploy.html")
    _assert_russian(doc)


def test_html_windows_1251_undeclared_is_detected() -> None:
    doc = parse(_russian_page("").encode("cp1251"), filename="deploy.html")
    _assert_russian(doc)


def test_html_wrong_transport_declaration_falls_back_to_meta() -> None:
    meta = '<meta charset="windows-1251">'
    data = _russian_page(meta).encode("cp1251")
    doc = parse(data, media_type="text/html; charset=utf-8")
    _assert_russian(doc)


def test_html_shift_jis_declared_by_transport_only() -> None:
    page = """<html><head><title>ナビゲーターの使い方</title></head><body>
<div class="menu"><a href="/">ホーム</a> | <a href="/faq">よくある質問</a></div>
<div id="content"><h1>ナビゲーターの使い方</h1>
<p>ナビゲーターは、管理者が承認した社内の情報源だけから回答します。回答には必ず出典が
付きます。①承認された情報源だけが検索の対象になります。</p>
<h2>情報源の追加</h2>
<p>メンバーは誰でも情報源を提案できます。管理者が承認すると、索引の作成が始まり、
進捗は画面で確認できます。取り消された情報源はすぐに回答に使われなくなります。</p>
</div></body></html>"""
    # "①" exists only in Microsoft's Shift_JIS (cp932), which is what the label means.
    data = page.encode("cp932")
    doc = parse(data, filename="guide.html", media_type="text/html; charset=Shift_JIS")
    assert doc.title == "ナビゲーターの使い方"
    assert "①承認された情報源" in doc.text
    assert ("ナビゲーターの使い方", "情報源の追加") in [s.heading_path for s in doc.sections]


def test_xhtml_with_xml_encoding_declaration() -> None:
    page = (
        '<?xml version="1.0" encoding="iso-8859-15"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Caf\xe9 menu</title></head>'
        "<body><h1>Caf\xe9 menu</h1><p>Our caf\xe9 serves coffee with a cr\xe8me br\xfbl\xe9e "
        "every morning, and the kitchen opens at seven for breakfast guests.</p></body></html>"
    )
    doc = parse(page.encode("iso-8859-15"), filename="menu.xhtml")
    assert doc.title == "Caf\xe9 menu"
    assert "cr\xe8me br\xfbl\xe9e" in doc.text


def test_tiny_html_without_main_content_keeps_its_text() -> None:
    doc = parse(b"<html><body><p>Short note.</p></body></html>", filename="n.html")
    assert "Short note." in doc.text


# --- PDF ----------------------------------------------------------------------------------


def test_pdf_text_by_page_with_title() -> None:
    data = make_pdf(
        [
            ["Quarterly security review", "All API keys were rotated (twice)."],
            ["Findings", "No secrets were found in prompts."],
            [],  # a page with no text is skipped, the numbering is kept
            ["Appendix", "Audit log excerpts."],
        ],
        title="Security Review Q3",
    )
    doc = parse(data, filename="reports/review.pdf", media_type="application/pdf")
    assert doc.kind == "pdf"
    assert doc.title == "Security Review Q3"
    assert [s.page for s in doc.sections] == [1, 2, 4]
    assert "All API keys were rotated (twice)." in doc.sections[0].text
    assert "No secrets were found in prompts." in doc.sections[1].text


def test_pdf_outline_gives_heading_paths() -> None:
    reader = pypdf.PdfReader(io.BytesIO(make_pdf([["Intro text"], ["Setup text"], ["More"]])))
    writer = pypdf.PdfWriter(clone_from=reader)
    guide = writer.add_outline_item(title="Guide", page_number=0)
    writer.add_outline_item(title="Setup", page_number=1, parent=guide)
    out = io.BytesIO()
    writer.write(out)
    doc = parse(out.getvalue(), filename="guide.pdf")
    assert doc.title == "guide.pdf"
    assert [(s.page, s.heading_path) for s in doc.sections] == [
        (1, ("Guide",)),
        (2, ("Guide", "Setup")),
        (3, ("Guide", "Setup")),
    ]


# --- refusals -----------------------------------------------------------------------------


def test_corrupt_pdf_is_refused() -> None:
    garbage = random.Random(3).randbytes(4000)
    with pytest.raises(ParseError) as info:
        parse(b"%PDF-1.4\n" + garbage, filename="broken.pdf")
    assert info.value.code == "corrupt_pdf"
    assert "corrupt PDF" in info.value.reason


def test_pdf_named_file_without_pdf_content_is_refused() -> None:
    with pytest.raises(ParseError) as info:
        parse(b"this is not a pdf at all", filename="fake.pdf")
    assert info.value.code == "corrupt_pdf"


def test_truncated_pdf_is_refused_or_partial_never_a_crash() -> None:
    data = make_pdf([["Page one"], ["Page two"]])
    try:
        doc = parse(data[: len(data) // 3], filename="cut.pdf")
    except ParseError as exc:
        assert exc.code in ("corrupt_pdf", "no_text")
    else:
        assert doc.kind == "pdf"


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (random.Random(1).randbytes(5000), "NUL"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "PNG"),
        (b"PK\x03\x04" + b"word/document.xml" * 10, "ZIP"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "ELF"),
    ],
)
def test_binary_files_are_refused(data: bytes, what: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(data, filename="notes.md")
    assert info.value.code == "binary"
    assert what in info.value.reason


def test_oversize_input_is_refused_before_parsing() -> None:
    big = b"All work and no play makes Jack a dull boy.\n" * 50_000  # 2.2 MB
    with pytest.raises(ParseError) as info:
        parse(big, filename="big.txt", max_bytes=1024 * 1024)
    assert info.value.code == "too_large"
    assert "1,048,576" in info.value.reason
    assert parse(big[:4096], filename="small.txt", max_bytes=1024 * 1024).kind == "text"


def test_undecodable_text_is_refused() -> None:
    rng = random.Random(7)
    noise = bytes(rng.randrange(0x80, 0x100) for _ in range(4000))
    with pytest.raises(ParseError) as info:
        parse(noise, filename="mystery.txt")
    assert info.value.code == "undecodable"


def test_empty_and_textless_inputs_are_refused() -> None:
    with pytest.raises(ParseError) as info:
        parse(b"  \n\t ", filename="blank.md")
    assert info.value.code == "empty"
    with pytest.raises(ParseError) as info:
        parse(make_pdf([[], []]), filename="scan.pdf")
    assert info.value.code == "no_text"
    with pytest.raises(ParseError) as info:
        parse(b"# Only a heading\n", filename="h.md")
    assert info.value.code == "no_text"


def test_sphinx_permalink_signs_are_not_part_of_headings() -> None:
    paragraph = (
        "<p>The built-in open function returns a file object, and is most commonly used "
        "with two positional arguments and one keyword argument. The first argument is a "
        "string containing the filename; the second describes the way the file is used.</p>"
    )
    page = (
        "<html><head><title>Input and Output</title></head><body><main>"
        '<section id="io"><h1>Input and Output<a class="headerlink" href="#io">¶</a></h1>'
        f"{paragraph * 3}"
        '<section id="rw"><h2>Reading and Writing Files<a class="headerlink" href="#rw">¶</a>'
        f"</h2>{paragraph * 4}</section></section></main></body></html>"
    )
    doc = parse(page.encode(), filename="io.html")
    paths = [s.heading_path for s in doc.sections]
    assert ("Input and Output", "Reading and Writing Files") in paths
    assert not any("¶" in h for p in paths for h in p)


def test_docbook_headings_start_sections_and_make_breadcrumbs() -> None:
    """DocBook (PostgreSQL's manual) wraps each h2/h3 in title-page divs and ends it with a
    "#" permalink; main-content extraction used to drop them all."""

    def entry(name: str, text: str) -> str:
        return (
            f'<dt id="{name}"><span class="term"><code class="varname">{name}</code> '
            f'(<code class="type">integer</code>)</span> <a href="#{name}" class="id_link">#'
            f"</a></dt><dd><p>{text}</p></dd>"
        )

    def titled(tag: str, title: str) -> str:
        return (
            f'<div class="titlepage"><div><div><{tag} class="title">{title} '
            f'<a href="#x" class="id_link">#</a></{tag}></div></div></div>'
        )

    memory = (
        "Sets the amount of memory the database server uses for shared memory buffers. "
        "The default is typically 128 megabytes, but might be less if your kernel "
        "settings will not support it, as determined during initdb."
    )
    disk = (
        "Specifies the maximum amount of disk space that a process can use for temporary "
        "files, such as sort and hash temporary files. A transaction attempting to exceed "
        "this limit will be canceled."
    )
    quotas = (
        "Quotas on temporary space are enforced per process, and a process that exceeds its "
        "quota has its current query cancelled with an error naming the limit."
    )
    page = (
        "<!DOCTYPE html><html><head><title>20.4. Resource Consumption</title></head>"
        '<body id="docContent"><div class="navheader"><table><tr><th>Chapter 20. Server '
        'Configuration</th></tr><tr><td><a href="prev.html">Prev</a></td><td><a href='
        '"next.html">Next</a></td></tr></table></div>'
        f'<div class="sect1">{titled("h2", "20.4. Resource Consumption")}'
        f'<div class="sect2">{titled("h3", "20.4.1. Memory")}<div class="variablelist"><dl>'
        f"{entry('shared_buffers', memory)}{entry('work_mem', memory)}</dl></div></div>"
        f'<div class="sect2">{titled("h3", "20.4.2. Disk")}<div class="variablelist"><dl>'
        f"{entry('temp_file_limit', disk)}</dl></div>"
        f'<div class="sect3">{titled("h4", "20.4.2.1. Quotas")}<p>{quotas}</p></div>'
        "</div></div></body></html>"
    )
    doc = parse(page.encode(), filename="runtime-config-resource.html")
    by_path = {s.heading_path: s.text for s in doc.sections}
    top = "20.4. Resource Consumption"
    assert list(by_path) == [
        (top, "20.4.1. Memory"),
        (top, "20.4.2. Disk"),
        (top, "20.4.2. Disk", "20.4.2.1. Quotas"),
    ]
    # Each section holds its own text only: a chunk cannot run across the boundary.
    assert "shared memory buffers" in by_path[(top, "20.4.1. Memory")]
    assert "disk space" not in by_path[(top, "20.4.1. Memory")]
    assert "disk space" in by_path[(top, "20.4.2. Disk")]
    assert "Prev" not in " ".join(by_path.values())  # navigation stays out


def test_definition_list_terms_stay_with_their_definitions() -> None:
    """A DocBook variablelist (or AsciiDoc's option list) names each setting in a <dt>:
    the term is the first line of its definition's passage, without its "#" permalink,
    so a search for the setting finds the text that explains it."""
    explain = {
        "max_connections": "Determines the maximum number of concurrent connections to the "
        "database server. The default is typically 100 connections, but might be less if "
        "your kernel settings will not support it.",
        "port": "The TCP port the server listens on; 5432 by default. Note that the same "
        "port number is used for all IP addresses the server listens on.",
    }
    entries = "".join(
        f'<dt id="guc-{name}"><span class="term"><code class="varname">{name}</code> '
        f'(<code class="type">integer</code>)</span> <a href="#guc-{name}" class="id_link">#'
        f"</a></dt><dd><p>{text}</p><p>This parameter can only be set at server start.</p></dd>"
        for name, text in explain.items()
    )
    page = (
        "<html><head><title>19.3. Connections and Authentication</title></head><body>"
        '<div class="sect1"><h2 class="title">19.3. Connections and Authentication</h2>'
        "<p>This section covers the settings that control how clients connect to the "
        "server and how they authenticate.</p>"
        f'<div class="variablelist"><dl class="variablelist">{entries}</dl></div></div>'
        "</body></html>"
    )
    doc = parse(page.encode(), filename="runtime-config-connection.html")
    paragraphs = [p for s in doc.sections for p in s.text.split("\n\n")]
    assert f"max_connections (integer)\n{explain['max_connections']}" in paragraphs
    assert f"port (integer)\n{explain['port']}" in paragraphs
    assert not any(p.startswith("- ") or "#" in p for p in paragraphs)
