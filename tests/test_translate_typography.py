"""The target language's quotes, apostrophes and spacing where the source is typeset (typography.py)."""

from __future__ import annotations

import random

import pytest

from llamadesk.app.translate import JobFinished, JobSettings, SegmentTranslator, TranslationJob, choose_strategy
from llamadesk.app.translate.file_job import FileJob, Unit
from llamadesk.app.translate.languages import resolve_language
from llamadesk.app.translate.protection import lost_spans
from llamadesk.app.translate.typography import is_typeset, typeset
from tests.conftest import PINNED_FLAGS, run_cli
from tests.translate_fakes import ScriptedGenerator, Units, segment_of

NBSP = "\u00a0"
EN, FR, ES = resolve_language("en"), resolve_language("fr"), resolve_language("es")
FEW_SHOT = choose_strategy({}, has_chat_template=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Django's French: guillemets with no-break spaces, the typographic apostrophe.
        ("“%(pk)s” n'est pas une valeur valide.", f"«{NBSP}%(pk)s{NBSP}» n’est pas une valeur valide."),
        ("Le champ “ nom ” est requis", f"Le champ «{NBSP}nom{NBSP}» est requis"),
        ("Il a dit « bonjour » hier", f"Il a dit «{NBSP}bonjour{NBSP}» hier"),
        # A no-break space before a mark that ends a clause; a plain space there becomes one.
        ("Page non valide (%(page_number)s): %(message)s", f"Page non valide (%(page_number)s){NBSP}: %(message)s"),
        ("Êtes-vous sûr ?", f"Êtes-vous sûr{NBSP}?"),
        ("Terminé !", f"Terminé{NBSP}!"),
        # Not a clause's end: a URL, a time, a ratio, a mark already spaced.
        ("Voir https://example.com/a:b et 10:30", "Voir https://example.com/a:b et 10:30"),
        (f"Déjà{NBSP}: prêt", f"Déjà{NBSP}: prêt"),
        # Protected spans keep their own marks: a tag's attribute, inline code, a placeholder.
        (
            'Lisez <a href="https://x.fr" title="l\'aide">l\'aide</a>',
            'Lisez <a href="https://x.fr" title="l\'aide">l’aide</a>',
        ),
        ("`it's: here` c'est", "`it's: here` c’est"),
        ('Valeur "{0}" invalide', 'Valeur "{0}" invalide'),
        # An apostrophe is one between letters, not a quote or a prime.
        ("l'objet 'cité' 5'", "l’objet 'cité' 5'"),
        ("  “x”  ", f"  «{NBSP}x{NBSP}»  "),
        ("", ""),
    ],
)
def test_french(text, expected):
    assert typeset(text, "fr") == expected
    assert typeset(expected, "fr") == expected, "setting it twice changes nothing"


def test_other_languages():
    assert typeset("Der Wert “%(v)s” ist “falsch”.", "de") == "Der Wert „%(v)s“ ist „falsch“."
    assert typeset("Значение “%(v)s” неверно", "ru") == "Значение «%(v)s» неверно"
    assert typeset("Wartość “x”", "pl") == "Wartość „x”"
    assert typeset("l'utente “x”", "it") == "l’utente “x”", "Italian: the apostrophe only"
    # Spanish (Django's catalog keeps “…”) and languages without a row: as the model wrote it.
    assert typeset("El valor “%(v)s” no es válido: l'x", "es") == "El valor “%(v)s” no es válido: l'x"
    assert typeset("“x” y'z", "xx") == "“x” y'z"


def test_a_source_is_typeset_by_its_curly_marks():
    assert is_typeset("Invalid value “%(value)s”") and is_typeset("Don’t save") and is_typeset("« x »")
    assert not is_typeset('Don\'t save the "value"') and not is_typeset("plain")


def test_typography_never_loses_a_span_of_random_text():
    """Random mixes of words, marks, placeholders, tags and URLs: every span survives, nothing raises."""
    pieces = [
        "mot", "l'", "n'est", "“", "”", "«", "»", "'", '"', ":", ";", "!", "?", " ", " ", NBSP, "\n",
        "%(name)s", "“%(pk)s”", "{0}", "%d", "<b>", "</b>", '<a href="x:y">', "https://e.com/a:b?c=1",
        "`a: b`", "10:30", "⟦1⟧", "⟦", "⟧", "é", "ß",
    ]  # fmt: skip
    rng = random.Random(19)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        for code in ("fr", "de", "ru", "it", "es"):
            out = typeset(text, code)
            assert not lost_spans(text, out), (text, out)
            if code != "de":  # German closes with English's opening mark: a stray one pairs anew
                assert typeset(out, code) == out, (text, out)


def test_lost_spans_counts_a_quoted_placeholder_by_its_placeholder():
    source = "“%(pk)s” is not a valid value."
    assert lost_spans(source, f"«{NBSP}%(pk)s{NBSP}» n’est pas une valeur valide.") == []
    assert lost_spans(source, "« pk » n’est pas une valeur valide.") == ["%(pk)s"]


def echo_translation(prompt) -> str:
    """A 'model' that answers in French with straight marks, as the starter does."""
    return " " + segment_of(prompt).replace("is", "n'est") + "\n"


def test_the_segment_translator_sets_typography_where_the_segment_is_typeset():
    translator = SegmentTranslator(ScriptedGenerator(echo_translation), FEW_SHOT)
    typeset_source = translator.translate("“%(pk)s” is “bad”", EN, FR)
    assert typeset_source.translation == f"«{NBSP}%(pk)s{NBSP}» n’est «{NBSP}bad{NBSP}»"
    plain = translator.translate('"%(pk)s" is bad', EN, FR)
    assert plain.translation == '"%(pk)s" n\'est bad', "straight quotes in: straight quotes out"
    forced = translator.translate("It is bad", EN, FR, typography=True)
    assert forced.translation == "It n’est bad"
    kept = translator.translate("“%(pk)s” is bad", EN, FR, typography=False)
    assert kept.translation == "“%(pk)s” n'est bad"


def test_the_source_kept_as_it_is_is_not_retypeset():
    translator = SegmentTranslator(ScriptedGenerator(lambda prompt: "\n"), FEW_SHOT)  # never answers
    result = translator.translate("Don’t use “this”", EN, FR)
    assert result.fallback == "source-kept" and result.translation == "Don’t use “this”"


def test_a_document_decides_once_for_all_its_segments():
    """One typeset paragraph makes the whole document typeset; --keep-quotes turns it off."""
    text = "It is here.\n\nThe “name” is set.\n"
    generator = ScriptedGenerator(echo_translation)
    finished = list(TranslationJob(SegmentTranslator(generator, FEW_SHOT), text, JobSettings(FR, EN)).run())[-1]
    assert isinstance(finished, JobFinished)
    assert finished.text == f"It n’est here.\n\nThe «{NBSP}name{NBSP}» n’est set.\n"
    settings = JobSettings(FR, EN, typography=False)
    finished = list(TranslationJob(SegmentTranslator(generator, FEW_SHOT), text, settings).run())[-1]
    assert finished.text == "It n'est here.\n\nThe “name” n'est set.\n"
    plain = "It is here.\n\nThe 'name' is set.\n"
    finished = list(TranslationJob(SegmentTranslator(generator, FEW_SHOT), plain, JobSettings(FR, EN)).run())[-1]
    assert finished.text == "It n'est here.\n\nThe 'name' n'est set.\n"


def test_a_file_job_decides_from_all_its_units():
    units = Units([Unit("It is one."), Unit("Two “x”.")])
    finished = list(
        FileJob(SegmentTranslator(ScriptedGenerator(echo_translation), FEW_SHOT), units, JobSettings(FR, EN)).run()
    )
    assert finished[-1].text == f"It n’est one.\nTwo «{NBSP}x{NBSP}»."


@pytest.mark.slow
def test_cli_sets_french_quotes_and_keep_quotes_keeps_them():
    """The real starter: the quoted placeholder comes back with French guillemets, or as written."""
    line = "The value “%(value)s” is not valid.\n"
    proc = run_cli("translate", "--to", "fr", "--from", "en", *PINNED_FLAGS, input=line)
    assert proc.returncode == 0, proc.stderr
    assert f"«{NBSP}%(value)s{NBSP}»" in proc.stdout and "“" not in proc.stdout and "'" not in proc.stdout
    proc = run_cli("translate", "--to", "fr", "--from", "en", "--keep-quotes", *PINNED_FLAGS, input=line)
    assert proc.returncode == 0, proc.stderr
    assert "“%(value)s”" in proc.stdout and "«" not in proc.stdout
