"""Code blocks in a Markdown reply, found by the same parser Textual renders with (markdown-it)."""

from __future__ import annotations

from markdown_it import MarkdownIt

_PARSER = MarkdownIt("commonmark")


def code_blocks(markdown: str) -> list[str]:
    """The contents of every fenced or indented code block, in order (an unclosed fence counts)."""
    return [token.content for token in _PARSER.parse(markdown) if token.type in ("fence", "code_block")]
