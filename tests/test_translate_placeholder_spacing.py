"""A space between a placeholder and the word the model glued to it (placeholder_spacing.py)."""

from __future__ import annotations

import random

import pytest

from llamadesk.app.translate import SegmentTranslator, choose_strategy
from llamadesk.app.translate.languages import resolve_language
from llamadesk.app.translate.placeholder_spacing import space_glued_placeholders
from tests.translate_fakes import ScriptedGenerator

FEW_SHOT = choose_strategy({}, has_chat_template=False)


@pytest.mark.parametrize(
    ("source", "translation", "code", "expected"),
    [
        # The starter's own slips on the evaluation sets.
        ("duplicate %s description of %s", "copier le %sdescription de %s", "fr", "copier le %s description de %s"),
        ("Value %(value)r is not a valid choice.", "Le %(value)rvalue est pas", "fr", "Le %(value)r value est pas"),
        ("Future %(items)s not available", "%(items)sfutur indisponible", "fr", "%(items)s futur indisponible"),
        ("unknown index entry type %s found", "el %sindex entry", "es", "el %s index entry"),
        ("Hello %s!", "Bonjour%s !", "fr", "Bonjour %s !"),
        ("of {n} files", "de{n}fichiers", "es", "de {n} fichiers"),
        # The source glues it itself, or never spaces it: as the model wrote it.
        ("%dpx wide", "%dpx de large", "fr", "%dpx de large"),
        ("file{s} found", "fichier{s} trouvé{s}", "fr", "fichier{s} trouvé{s}"),
        ("(%s)", "(%s)x", "fr", "(%s)x"),
        # Punctuation and digits after it are fine; languages without spaces between words are left alone.
        ("Page %s: %s", "Page %s: %s.", "fr", "Page %s: %s."),
        ("of %s files", "的%s文件", "zh", "的%s文件"),
        ("of %s files", "%sファイル", "ja", "%sファイル"),
        # Inside a URL, a tag or code, nothing is touched.
        ("see %s now", "voir https://x.org/?q=%sabc et%s", "fr", "voir https://x.org/?q=%sabc et %s"),
        ("see %s now", "voir `a%sb` et%s", "fr", "voir `a%sb` et %s"),
        ("100%% of %s", "100%%de %s", "fr", "100%%de %s"),
    ],
)
def test_spacing(source, translation, code, expected):
    assert space_glued_placeholders(source, translation, code) == expected


def test_random_text_loses_nothing_and_a_second_pass_changes_nothing():
    pieces = ["mot", " ", "%s", "%d", "%(name)s", "{0}", "{n}", "x", ".", "é", "`c%sd`", "https://e.com/%s", "%%", "1"]
    rng = random.Random(86)
    for _ in range(3000):
        source = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        translation = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        out = space_glued_placeholders(source, translation, "fr")
        assert out.replace(" ", "") == translation.replace(" ", ""), "only spaces are added"
        assert space_glued_placeholders(source, out, "fr") == out
        for placeholder in ("%s", "%d", "%(name)s", "{0}", "{n}"):
            assert out.count(placeholder) == translation.count(placeholder), (source, translation, out)


def test_the_segment_translator_mends_a_glued_placeholder():
    translator = SegmentTranslator(ScriptedGenerator([" Le ⟦1⟧valeur est fausse.\n"]), FEW_SHOT)
    result = translator.translate("The %(value)r value is wrong.", resolve_language("en"), resolve_language("fr"))
    assert result.translation == "Le %(value)r valeur est fausse."
    assert not result.problems
