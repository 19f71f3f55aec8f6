"""Plain-text tables for the CLI's human output."""

from __future__ import annotations

from collections.abc import Sequence

from llamadesk.app.core.printable import printable


def cell_text(value: object) -> str:
    """A cell as the terminal should draw it: names come from servers and file names, and an
    escape sequence in one must be shown, never obeyed (OSC 0 retitled the window); a line break
    or tab would break the table's columns."""
    return printable(str(value)).replace("\n", "^J").replace("\t", "^I")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns, two spaces apart, sized to their widest cell."""
    cells = [[str(h) for h in headers]] + [[cell_text(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in cells)
