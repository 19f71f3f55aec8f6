"""Which language a model's output is in, judged by py3langid among a few candidates."""

from __future__ import annotations


def language_of(text: str, candidates=("en", "fr", "de", "es")) -> str:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(candidates))
    return identifier.classify(text)[0]
