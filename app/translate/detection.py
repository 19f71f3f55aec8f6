"""Which language a text is in, when the user did not say.

py3langid (a maintained fork of langid.py) ships its trained model inside the wheel (about 4 MB)
and needs only numpy, which llamadesk already has: it works offline, is deterministic, answers
in milliseconds and covers 97 languages. The translation model itself could be asked instead,
but a 270M base model names languages unreliably and would cost a generation per document.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import threading

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.translate.languages import LANGUAGES, Language
from llamadesk.app.translate.protection import find_spans

# Below this probability the guess is not trusted: the user is asked for --from.
MIN_CONFIDENCE = 0.5
SAMPLE_CHARS = 4000


_identifier_lock = threading.Lock()
_loaded_identifier = None


def _identifier():
    """The detector, loaded once per process (by whichever thread asks first; the others wait)."""
    global _loaded_identifier
    if _loaded_identifier is not None:
        return _loaded_identifier
    with _identifier_lock:
        if _loaded_identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            try:
                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            except OSError as err:
                raise _unpack_failure(err) from None
            # Only languages llamadesk can name in a prompt compete.
            identifier.set_languages(sorted({code.split("-")[0] for code in LANGUAGES} & set(identifier.labels)))
            _loaded_identifier = identifier
    return _loaded_identifier


def _unpack_failure(err: OSError) -> LlamadeskError:
    """What to do when the detector cannot be loaded: py3langid unpacks its model (68 MB) into a
    temporary file, so a full or unwritable temporary folder stops every translation, even one
    given --from (each segment's confidence check asks the detector)."""
    if tempfile.tempdir is None:  # gettempdir() found no folder it could write a file in
        return LlamadeskError(
            "the language detector needs a temporary folder to unpack its model (about 70 MB) and none "
            "can be written (TMPDIR, /tmp, /var/tmp); set TMPDIR to a folder with room"
        )
    return LlamadeskError(
        f"the language detector could not unpack its model (about 70 MB) into the temporary folder "
        f"{tempfile.tempdir} ({err.strerror or err}); free some space there or set TMPDIR to a folder with room"
    )


def _load_quietly() -> None:
    """Load the detector, keeping a failure to itself: the first real use loads it again and says
    what went wrong in one line (a background thread's error was a traceback on the terminal)."""
    with contextlib.suppress(Exception):
        _identifier()


def load_in_background() -> None:
    """Start loading the detector on another thread, so that its first use does not wait for it.

    Its model ships xz-compressed: loading it costs about 0.8 s of decompression, which every
    translation pays (the confidence check asks the detector about each segment). Started before
    the model loads, it runs on another core while llama.cpp reads the weights (lzma and llama.cpp
    both release the GIL); a caller that needs it sooner waits only for what is left.
    """
    if _loaded_identifier is None:
        threading.Thread(target=_load_quietly, name="language-detector-load", daemon=True).start()


def prose_only(text: str) -> str:
    """`text` without placeholders, URLs, code and markup, which would mislead a detector."""
    kept, position = [], 0
    for start, end, _kind in find_spans(text):
        kept.append(text[position:start])
        position = end
    kept.append(text[position:])
    return re.sub(r"\s+", " ", " ".join(kept)).strip()


_WORD = re.compile(r"[^\W\d_]{2,}")  # two letters or more in a row


def has_words(text: str) -> bool:
    """Whether `text` has a word of two letters or more outside placeholders, URLs, code and markup."""
    return _WORD.search(prose_only(text)) is not None


class SourceLanguageUnknown(BadInputError):
    """The detector could not name the source language; `reason` says why, without the CLI's advice."""

    def __init__(self, reason: str):
        super().__init__(f"{reason}; pass --from")
        self.reason = reason


def detect_language(text: str) -> tuple[Language, float]:
    """The most likely language of `text` and its probability; BadInputError if nobody could tell."""
    sample = prose_only(text)[:SAMPLE_CHARS]
    if not _WORD.search(sample):
        raise SourceLanguageUnknown("could not tell the source language (there are no words to go by)")
    code, confidence = _identifier().classify(sample)
    language = LANGUAGES.get(code)
    if language is None or confidence < MIN_CONFIDENCE:
        raise SourceLanguageUnknown(
            f"could not tell the source language with confidence (best guess {code}, {confidence:.0%})"
        )
    return language, confidence


def reads_as_source(text: str, source: Language, target: Language) -> bool:
    """Whether a translation reads more like the source language than the target one.

    Only said for text with enough words to judge (a short label like "OK" or "Django" proves
    nothing); the detector chooses between the two languages alone.
    """
    sample = prose_only(text)
    if len(re.findall(r"[^\W\d_]{2,}", sample)) < 4:
        return False
    codes = {source.code.split("-")[0], target.code.split("-")[0]}
    if len(codes) < 2 or not codes <= set(_identifier().nb_classes):
        return False
    scores = dict(_identifier().rank(sample))
    return scores.get(source.code.split("-")[0], 0.0) > scores.get(target.code.split("-")[0], 0.0)
