"""An email's readable text, with the standard library: MIME parts, transfer encodings, charsets, HTML.

`email.message_from_bytes(..., policy=email.policy.default)` parses the message and
decodes RFC 2047 headers; `get_payload(decode=True)` undoes quoted-printable and
base64. Charsets are decoded here rather than by `get_content()`, which raises on a
charset Python does not know and reads an undeclared one as ASCII.
"""

from __future__ import annotations

import codecs
import email
import email.policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from html.parser import HTMLParser

# Headers of which at least one makes bytes an email rather than a stray body.
_MESSAGE_HEADERS = ("from", "to", "subject", "date", "message-id", "content-type", "received")


def read_message(raw: bytes) -> EmailMessage:
    """The parsed message; the stdlib parser records defects rather than raising, except on deep nesting.

    Thousands of nested multiparts fit in a megabyte and make the parser recurse past
    Python's limit: that RecursionError is for the caller to turn into an unread email.
    """
    return email.message_from_bytes(raw, policy=email.policy.default)


def read_headers(raw: bytes) -> Message:
    """Only the top-level headers, which parse however deeply the body is nested."""
    return BytesHeaderParser(policy=email.policy.default).parsebytes(raw)


def looks_like_email(message: Message) -> bool:
    """True when the bytes had at least one header an email has."""
    # `in`, not .get(): the name is enough, and parsing a malformed address header can raise.
    return any(name in message for name in _MESSAGE_HEADERS)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode by the declared charset; UTF-8 (with replacement) only when it is undeclared or unknown.

    A declared charset that the bytes do not match still decodes, with replacement
    characters: an email is never refused for one bad byte.
    """
    if charset:
        try:
            return data.decode(codecs.lookup(charset).name, errors="replace")
        except LookupError:
            pass
    return data.decode("utf-8", errors="replace")


def header(message: Message, name: str) -> str:
    """A header as text ('' when absent); a malformed one is returned as it was written."""
    try:
        value = message.get(name)
    except Exception:  # the policy's header parser can raise on badly broken headers: keep the raw text
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    return "" if value is None else str(value).strip()


def part_text(part: Message) -> str:
    """One leaf part's text: transfer encoding undone, then its charset."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = decode_bytes(payload, part.get_content_charset())
    return text.replace("\r\n", "\n").replace("\r", "\n")  # mail's CRLF line ends, as plain newlines


def body_text(message: Message) -> str:
    """The message's text: its text/plain parts, or its HTML parts reduced to text when it has none.

    Attachments are skipped; a forwarded message (message/rfc822) is walked into, so an
    email forwarded as an attachment is read too.
    """
    plain, html = [], []
    for part in message.walk():
        if part.is_multipart() or _is_attachment(part):
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            plain.append(part_text(part))
        elif kind == "text/html":
            html.append(html_to_text(part_text(part)))
    return "\n".join(plain if any(p.strip() for p in plain) else html).strip()


def _is_attachment(part: Message) -> bool:
    disposition = part.get("content-disposition")
    return disposition is not None and str(disposition).strip().lower().startswith("attachment")


class _TextExtractor(HTMLParser):
    """Text of an HTML document: blocks become lines, table cells are separated by tabs."""

    _BLOCKS = frozenset(
        {
            "p",
            "div",
            "br",
            "tr",
            "li",
            "ul",
            "ol",
            "table",
            "tbody",
            "thead",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "pre",
            "blockquote",
            "hr",
            "dt",
            "dd",
            "dl",
            "section",
            "article",
            "header",
            "footer",
            "address",
            "center",
        }
    )
    _CELLS = frozenset({"td", "th"})
    _SKIPPED = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # &amp; &eacute; &#233; become characters
        self.chunks: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self.skipping += 1
        elif tag in self._BLOCKS:
            self.chunks.append("\n")
        elif tag in self._CELLS:
            self.chunks.append("\t")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # <br/> is one line break, not an opening and a closing block

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping or not data:
            return
        # HTML folds whitespace; the edges are kept as one space, so "a&nbsp;<b>b</b>" stays two words.
        text = " ".join(data.split())
        self.chunks.append((" " if data[0].isspace() else "") + text + (" " if data[-1].isspace() and text else ""))


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one line per block; cells of a table row joined by a tab."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = []
    for line in "".join(parser.chunks).split("\n"):
        cells = [" ".join(cell.split()) for cell in line.split("\t")]
        lines.append("\t".join(cell for cell in cells if cell))
    # Runs of empty lines (nested blocks) become one blank line, which still separates paragraphs.
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
