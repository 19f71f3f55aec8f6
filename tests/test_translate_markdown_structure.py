"""Markdown structure through a whole document translation, with a scripted model (fast).

Each document here once lost markup in translation: the model was given it as text, or the
splitter cut a span in two. The model here upper-cases what it is given, so every byte of markup
that comes back in lower case was kept out of its hands; and what it was given is checked to hold
nothing but words and markers.
"""

from __future__ import annotations

import re

import pytest

from llamadesk.app.translate import JobSettings, SegmentTranslator, TranslationJob, choose_strategy, resolve_language
from llamadesk.app.translate.segmentation import assemble, pack_chunks, split_document
from llamadesk.app.translate.source_text import read_source_text
from tests.translate_fakes import ScriptedGenerator, segment_of, upper_translation

EN, FR = resolve_language("en"), resolve_language("fr")
FEW_SHOT = choose_strategy({}, has_chat_template=False)
# What the model must never be given: Markdown and HTML markup, line breaks.
MARKUP = re.compile(r"[<>|#`*_\[\]\\\r\n]|^\s*(?:[-+]|\d+[.)])\s|^\s*>")
MARKER = re.compile(r"⟦\d+⟧")


def translate(document: str, markup_given: bool = False) -> tuple[str, list[str]]:
    """The document translated by a model that upper-cases its words, and the texts it was given
    (checked to hold no markup unless `markup_given`: text that only looks like markup)."""
    generator = ScriptedGenerator(upper_translation)
    job = TranslationJob(SegmentTranslator(generator, FEW_SHOT), document, JobSettings(target=FR, source=EN))
    finished = list(job.run())[-1]
    given = [segment_of(prompt) for prompt in generator.prompts]
    assert markup_given or not [text for text in given if MARKUP.search(MARKER.sub("", text))], given
    return finished.text, given


def test_an_html_tag_written_over_several_lines_is_kept_byte_for_byte():
    document = (
        'Our logo is shown below.\n\n<img src="assets/logo.svg"\n     alt="The project logo"\n     height="120">\n\n'
        "That is all.\n"
    )
    out, given = translate(document)
    assert out == document.replace("Our logo is shown below.", "OUR LOGO IS SHOWN BELOW.").replace(
        "That is all.", "THAT IS ALL."
    )
    assert given == ["Our logo is shown below.", "That is all."]


def test_a_multi_line_tag_inside_a_wrapped_paragraph_keeps_its_line_break():
    document = (
        'A long paragraph that was wrapped for width by an editor, with a tag <img src="a.png"\n'
        '     alt="A picture"> inside it, and more words after it to wrap.\n'
    )
    out, given = translate(document)
    assert '<img src="a.png"\n     alt="A picture">' in out
    assert given == [
        "A long paragraph that was wrapped for width by an editor, with a tag ⟦1⟧ inside it, "
        "and more words after it to wrap."
    ]


def test_block_markup_nested_in_quotes_and_list_items_is_kept():
    document = (
        "> - Back up your data first\n> - Then run the upgrade\n> 1. Numbered in a quote\n\n"
        "> ### A heading in a quote\n\n- > A quoted line in a list item\n- 2) A list in a list\n"
        "> > - [ ] A task in a quote in a quote\n"
    )
    out, given = translate(document)
    assert out == (
        "> - BACK UP YOUR DATA FIRST\n> - THEN RUN THE UPGRADE\n> 1. NUMBERED IN A QUOTE\n\n"
        "> ### A HEADING IN A QUOTE\n\n- > A QUOTED LINE IN A LIST ITEM\n- 2) A LIST IN A LIST\n"
        "> > - [ ] A TASK IN A QUOTE IN A QUOTE\n"
    )
    assert "Back up your data first" in given and "A heading in a quote" in given


def test_a_table_without_outer_pipes_is_translated_cell_by_cell():
    document = (
        "The keys:\nKey | Meaning\n--- | :---:\nEsc | Closes the window\nTab | Moves to the next field\n"
        "Enter\n\nAfter the table.\n"
    )
    out, given = translate(document)
    assert out == (
        "THE KEYS:\nKEY | MEANING\n--- | :---:\nESC | CLOSES THE WINDOW\nTAB | MOVES TO THE NEXT FIELD\n"
        "ENTER\n\nAFTER THE TABLE.\n"
    )
    assert given == [
        "The keys:",
        "Key",
        "Meaning",
        "Esc",
        "Closes the window",
        "Tab",
        "Moves to the next field",
        "Enter",
        "After the table.",
    ]


def test_a_table_with_outer_pipes_continues_with_rows_without_them():
    out, given = translate("| Key | Meaning |\n|-----|---------|\nEsc | Closes it\n\nText.\n")
    assert out == "| KEY | MEANING |\n|-----|---------|\nESC | CLOSES IT\n\nTEXT.\n"
    assert given == ["Key", "Meaning", "Esc", "Closes it", "Text."]


def test_a_header_and_delimiter_with_different_cell_counts_are_no_table():
    # GFM's rule: "a | b" over a one-cell delimiter row is not a table, and the lines stay prose
    out, _ = translate("Either a | b here\n| --- |\n", markup_given=True)
    assert out.startswith("EITHER A | B HERE\n")


def test_a_pipe_in_a_code_span_of_a_cell_splits_the_cell_as_in_gfm():
    # GFM splits a row at every unescaped pipe before reading code spans: `code|x` is two cells
    document = "| Name | Value |\n| --- | --- |\n| `code|x` | the value |\n| `a\\|b` | escaped |\n"
    out, given = translate(document, markup_given=True)  # "`code" and "x`" are cells of text
    assert out.splitlines()[2] == "| `CODE|X` | THE VALUE |"
    assert out.splitlines()[3] == "| `a\\|b` | ESCAPED |"
    assert "`code" in given and "x`" in given and "⟦1⟧" not in given


def test_lines_are_not_cut_inside_a_link_or_a_code_span():
    document = (
        "Please read\n[the installation\nguide](https://example.com/install) first.\n"
        "Then run `make\ninstall` as root.\n"
    )
    out, given = translate(document)
    assert given == ["Please read", "⟦1⟧the installation guide⟦2⟧ first.", "Then run ⟦1⟧ as root."]
    assert out.startswith("PLEASE READ\n[THE INSTALLATION\nGUIDE](https://example.com/install) FIRST.\n")
    assert out.endswith("\nTHEN RUN `make\ninstall` AS ROOT.\n")
    assert out.count("\n") == document.count("\n")


def test_a_multi_line_html_comment_is_kept_whole():
    document = (
        "Text before.\n\n<!-- Reviewers: the price\nis still secret -->\n\n<!--\nHidden too.\n-->\n"
        "Shown again.\n\nA line with <!-- a secret\nthat runs on --> then text.\n"
    )
    out, given = translate(document)
    assert out == (
        "TEXT BEFORE.\n\n<!-- Reviewers: the price\nis still secret -->\n\n<!--\nHidden too.\n-->\n"
        "SHOWN AGAIN.\n\nA LINE WITH <!-- a secret\nthat runs on --> THEN TEXT.\n"
    )
    assert not [text for text in given if "secret" in text or "Hidden" in text]


@pytest.mark.parametrize(
    "link",
    [
        "[our FAQ](https://example.com/faq 'Frequently asked')",
        "[the PDF](<https://example.com/a b.pdf>)",
        "[the blog](https://example.com/blog (Our blog))",
        '[the guide](<guide.md> "The guide")',
    ],
)
def test_every_link_form_commonmark_allows_is_kept(link):
    out, given = translate(f"Read {link} today.\n")
    text, target = link[1:].split("](", 1)
    assert out == f"READ [{text.upper()}]({target} TODAY.\n"
    assert given == [f"Read ⟦1⟧{text}⟦2⟧ today."]


def test_strong_emphasis_keeps_all_its_marks():
    out, given = translate("This is ***strong emphasis*** and ___this___ too.\n")
    assert out == "THIS IS ***STRONG EMPHASIS*** AND ___THIS___ TOO.\n"
    assert given == ["This is ⟦1⟧strong emphasis⟦2⟧ and ⟦3⟧this⟦4⟧ too."]


def test_an_e_mail_autolink_keeps_its_angle_brackets():
    out, given = translate("Write to <mail@example.com> or see <irc://chat.example.org/help> now.\n")
    assert out == "WRITE TO <mail@example.com> OR SEE <irc://chat.example.org/help> NOW.\n"
    assert given == ["Write to ⟦1⟧ or see ⟦2⟧ now."]


def test_a_backslash_hard_break_is_kept_as_markup():
    out, given = translate("First line\\\nsecond line\\\\\nthird line\n")
    assert out == "FIRST LINE\\\nSECOND LINE\\\\\nTHIRD LINE\n"
    assert given[0] == "First line"


def test_code_keeps_its_own_line_endings_and_carriage_returns(tmp_path):
    source = tmp_path / "mixed.md"
    data = (
        b'Intro text.\n\n```c\r\nint main() {\r\n  printf("a");  // CR:\rX\r\n}\r\n```\r\n\n'
        b"A paragraph that is long enough to be wrapped by the editor\r\nso it runs over two lines here.\r\n"
    )
    source.write_bytes(data)
    out, _ = translate(read_source_text(source))
    written = out.encode()
    assert written.startswith(b'INTRO TEXT.\n\n```c\r\nint main() {\r\n  printf("a");  // CR:\rX\r\n}\r\n```\r\n\n')
    assert written.endswith(b"\r\n") and written.count(b"\r\n") == data.count(b"\r\n")


def test_in_plain_text_indented_paragraphs_are_translated_with_their_indentation():
    text = (
        "Dear Ann,\n\n    I am writing to you about the problem that we\nhad discussed on the phone last week.\n\n"
        "\tBest regards,\n\tBob\n"
    )
    pieces = split_document(text, indented_code=False)
    assert [piece.source for piece in pieces if piece.translatable] == [
        "Dear Ann,",
        "I am writing to you about the problem that we had discussed on the phone last week.",
        "Best regards,",
        "Bob",
    ]
    chunks = pack_chunks(pieces, 64, lambda t: len(t.split()))
    out = assemble(pieces, chunks, [chunk.text.upper() for chunk in chunks])
    assert out.startswith("DEAR ANN,\n\n    I AM WRITING") and out.endswith("\n\n\tBEST REGARDS,\n\tBOB\n")
    assert "    code stays" in "".join(
        p.text for p in split_document("Text.\n\n    code stays\n") if not p.translatable
    )


# -- containers: what a list item's or a quote's markers hold is read as at the top level ----------


INSTALL = (
    "# Install\n\n1. ```sh\n   pip install requests\n   ```\n2. Open the settings window.\n\n"
    "The weather is nice today.\n\n## Usage\n\nSave your changes before leaving.\n"
)


def test_a_fence_opened_on_a_list_item_s_line_is_kept_and_closes_with_the_item():
    # The code went to the model, and the item's closing ``` opened a "fence" to the end of the file.
    out, given = translate(INSTALL)
    assert out == (
        "# INSTALL\n\n1. ```sh\n   pip install requests\n   ```\n2. OPEN THE SETTINGS WINDOW.\n\n"
        "THE WEATHER IS NICE TODAY.\n\n## USAGE\n\nSAVE YOUR CHANGES BEFORE LEAVING.\n"
    )
    assert given == [
        "Install",
        "Open the settings window.",
        "The weather is nice today.",
        "Usage",
        "Save your changes before leaving.",
    ]


@pytest.mark.parametrize(
    "block",
    [
        "- ~~~\n  code stays here\n  ~~~\n",
        "> - ```\n>   code stays here\n>   ```\n",
        "- > ```\n  > code stays here\n  > ```\n",
        "- <!-- a comment\n  code stays here -->\n",
        "> ```\n> code stays here\n> ```\n",
    ],
)
def test_a_fence_or_html_block_after_list_or_quote_markers_is_kept(block):
    out, given = translate(f"Before it.\n\n{block}- Open it.\n\nAfter it.\n")
    assert out == f"BEFORE IT.\n\n{block}- OPEN IT.\n\nAFTER IT.\n"
    assert given == ["Before it.", "Open it.", "After it."]


def test_a_fence_ends_where_its_quote_or_list_item_ends():
    # CommonMark: a container that ends closes the code in it; the text after is translated.
    out, _ = translate("> ```\n> code\nNot quoted.\n\n- ```\n  code\nNot in the item.\n")
    assert out == "> ```\n> code\nNOT QUOTED.\n\n- ```\n  code\nNOT IN THE ITEM.\n"


def test_a_paragraph_that_starts_with_a_code_span_is_no_fence():
    # A backtick fence's info string holds no backtick: this was a "fence" to the end of the file.
    out, given = translate("```ls``` lists the files in the current folder.\n\nMore text.\n")
    assert out == "```ls``` LISTS THE FILES IN THE CURRENT FOLDER.\n\nMORE TEXT.\n"
    assert given == ["⟦1⟧ lists the files in the current folder.", "More text."]


def test_a_link_or_code_span_over_a_line_break_in_a_list_item_or_quote_stays_whole():
    document = (
        "- Read [the installation\n  guide](https://example.com/install) before you start.\n"
        "- Run `make\n  install` in the folder.\n\n"
        "> Please read [the whole\n> manual](https://example.com/m) first, it helps.\n"
    )
    out, given = translate(document)
    assert out == (
        "- READ [THE INSTALLATION\n  GUIDE](https://example.com/install) BEFORE YOU START.\n"
        "- RUN `make\n  install` IN THE FOLDER.\n\n"
        "> PLEASE READ [THE WHOLE\n> MANUAL](https://example.com/m) FIRST, IT HELPS.\n"
    )
    assert given == [
        "Read ⟦1⟧the installation guide⟦2⟧ before you start.",
        "Run ⟦1⟧ in the folder.",
        "Please read ⟦1⟧the whole manual⟦2⟧ first, it helps.",
    ]


def test_a_hard_wrapped_list_item_or_quote_is_one_text():
    document = (
        "- The installer checks every dependency before it\n  starts copying the files to your disk.\n"
        "> A quotation long enough to be wrapped by its editor\nover a lazy line that has no marker of its own\n"
        "> and a marked one.\n"
    )
    out, given = translate(document)
    assert given == [
        "The installer checks every dependency before it starts copying the files to your disk.",
        "A quotation long enough to be wrapped by its editor over a lazy line that has no marker of its own "
        "and a marked one.",
    ]
    lines = out.splitlines()  # each line break as it was: the item's indentation, no ">", then "> "
    assert len(lines) == 5 and lines[0].startswith("- THE ") and lines[1].startswith("  ") and lines[1][2] != " "
    assert lines[2].startswith("> A ") and lines[3][0] not in " >" and lines[4].startswith("> ")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            "> Key | Action\n> --- | ---\n> Esc | Closes the window\n",
            "> KEY | ACTION\n> --- | ---\n> ESC | CLOSES THE WINDOW\n",
        ),
        (
            "- Key | Action\n  --- | ---\n  Esc | Closes the window\n",
            "- KEY | ACTION\n  --- | ---\n  ESC | CLOSES THE WINDOW\n",
        ),
    ],
)
def test_a_table_without_outer_pipes_in_a_quote_or_list_item_is_translated_cell_by_cell(table, expected):
    out, given = translate(table)
    assert out == expected
    assert given == ["Key", "Action", "Esc", "Closes the window"]


def test_one_line_html_blocks_have_their_text_translated_and_tags_kept():
    document = (
        '<p align="center">The fastest way to read your files.</p>\n\n<details>\n<summary>Click here</summary>\n\n'
        '<div>The weather is nice today.</div>\n</details>\n\n<p align="center"><img src="logo.png"></p>\n'
    )
    out, given = translate(document)
    assert out == (
        '<p align="center">THE FASTEST WAY TO READ YOUR FILES.</p>\n\n<details>\n<summary>CLICK HERE</summary>\n\n'
        '<div>THE WEATHER IS NICE TODAY.</div>\n</details>\n\n<p align="center"><img src="logo.png"></p>\n'
    )
    assert given == [
        "⟦1⟧The fastest way to read your files.⟦2⟧",
        "⟦1⟧Click here⟦2⟧",
        "⟦1⟧The weather is nice today.⟦2⟧",
    ]


# -- re-wrapping --------------------------------------------------------------------------------


def test_a_same_language_copy_of_a_wrapped_paragraph_is_byte_exact():
    document = (
        "Le programme lit le fichier de configuration au démarrage \r\nle programme lit vite le fichier -"
        " puis il ouvre\r\n> la fenêtre principale et affiche la liste des fichiers.\n"
        "> Une citation assez longue pour être coupée en deux lignes\n>   par un éditeur de texte.\n"
    )
    generator = ScriptedGenerator(lambda prompt: " " + segment_of(prompt) + "\n")  # the model copies
    job = TranslationJob(SegmentTranslator(generator, FEW_SHOT), document, JobSettings(target=FR, source=EN))
    assert list(job.run())[-1].text == document


def test_each_re_wrapped_line_keeps_its_own_line_ending():
    document = (
        "A paragraph that is long enough to be wrapped by the editor\r\n"
        "so that it runs over three lines of text in the file\n"
        "and ends here.\r\n"
    )
    out, _ = translate(document)
    assert re.findall(r"\r\n|\n", out) == ["\r\n", "\n", "\r\n"]  # all three were "\r\n"
    assert out.split() == document.upper().split()


def test_whitespace_runs_in_a_heading_or_tag_are_read_as_before():
    spaces = " " * 500
    document = f"# Title{spaces}end{spaces}##\n\n<div{spaces}x\n\n## Setup{spaces}{{#setup}}\n"
    out, given = translate(document, markup_given=True)  # "<div x" is no tag: text
    assert out.startswith("# TITLE") and f"END{spaces}##\n\n<DIV" in out  # the closing #s are kept
    assert out.endswith(f"X\n\n## SETUP{spaces}{{#setup}}\n")  # and the attributes
    assert given[0].split() == ["Title", "end"] and given[2] == "Setup"


def test_a_number_that_starts_a_wrapped_line_does_not_start_a_list():
    # CommonMark: only a list that starts with 1. (and holds something) interrupts a paragraph.
    out, given = translate("The second version was released in the spring of\n2024. It is the current one.\n")
    assert " ".join(given) == "The second version was released in the spring of 2024. It is the current one."
    assert out.count("\n") == 2
