"""Sample files that several translation tests read: Django's English catalog, a small .pot with
plurals, contexts and format flags, an HTML page with nested inline markup, and the page's structure
as the standard parser sees it (so a test can check that translating left every tag in place).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from llamadesk.app.translate.formats.html import LANGUAGE_ATTRIBUTES, TRANSLATED_ATTRIBUTES


def django_catalog() -> Path:
    import django

    return Path(django.__file__).parent / "conf" / "locale" / "en" / "LC_MESSAGES" / "django.po"


POT = b"""# Translations template for Demo.
msgid ""
msgstr ""
"Project-Id-Version: Demo 1.0\\n"
"Content-Type: text/plain; charset=UTF-8\\n"

#. Translators: the month, abbreviated
#: dates.py:4
msgctxt "abbrev. month"
msgid "May"
msgstr ""

#: views.py:10
#, python-format
msgid "Hello %(name)s, you have %(count)d new messages."
msgstr ""

#: views.py:12
#, python-brace-format
msgid "The file {name} could not be opened."
msgstr ""

#: views.py:14
msgid ""
"First line.\\n"
"\\n"
"Third line."
msgstr ""

#: cli.py:3
#, c-format
msgid "Copied %zu files to %s.\\n"
msgstr ""
"""


PAGE = """<!DOCTYPE html>
<html lang="en">
<head><title>Settings</title>
<style>p { color: red; } /* Do not translate */</style>
<script>var greeting = "Hello world";</script></head>
<body>
  <!-- a comment -->
  <p>Click <a href="/docs" title="Open the documentation">the <b>big</b> button</a>
     to run <code>make test</code> now.</p>
  <img src="cat.png" alt='A cat &amp; a dog'>
  <input placeholder=Search>
  <pre>Keep   this
  text</pre>
  <p>Fish &amp; chips</p>
  <p><code>ls()</code> lists the files.</p>
</body>
</html>
"""


class Structure(HTMLParser):
    """The page as the standard parser sees it, with the text for people left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.items: list[tuple] = []
        self.raw_text_in: list[str] = []

    def handle_starttag(self, tag, attrs):
        # Translated: the attributes for people, and the root's language (the target's now).
        kept = [
            (k, v)
            for k, v in attrs
            if k not in TRANSLATED_ATTRIBUTES and not (tag == "html" and k in LANGUAGE_ATTRIBUTES)
        ]
        self.items.append(("start", tag, kept))
        self.raw_text_in.append(tag)

    def handle_endtag(self, tag):
        self.items.append(("end", tag))
        if self.raw_text_in and self.raw_text_in[-1] == tag:
            self.raw_text_in.pop()

    def handle_data(self, data):
        if any(t in ("script", "style", "code", "pre") for t in self.raw_text_in):
            self.items.append(("data", data))

    def handle_entityref(self, name):
        self.items.append(("entity", name))

    def handle_charref(self, name):
        self.items.append(("charref", name))

    def handle_comment(self, data):
        self.items.append(("comment", data))

    def handle_decl(self, decl):
        self.items.append(("decl", decl))


def structure(text: str) -> list[tuple]:
    parser = Structure()
    parser.feed(text)
    parser.close()
    return parser.items
