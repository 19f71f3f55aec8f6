"""Languages by code or by name: `fr`, `fra`, `French`, `français` all mean the same language.

The table is data: one row per language with its ISO 639-1 code, ISO 639-3 code, English name
(used in prompts, since models know "French" better than "fr") and the name in the language
itself. py3langid (the source-language detector) answers with ISO 639-1 codes, so every
language it can detect that a prompt might need is here.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamadesk.app.core.errors import BadInputError


@dataclass(frozen=True)
class Language:
    """One human language as llamadesk names it."""

    code: str  # ISO 639-1 (two letters); zh-Hant style subtags where needed
    code3: str  # ISO 639-3
    name: str  # English name, what prompts say
    native: str  # the language's own name for itself

    def __str__(self) -> str:
        return self.name


# (code, ISO 639-3, English name, native name)
LANGUAGE_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("af", "afr", "Afrikaans", "Afrikaans"),
    ("ar", "ara", "Arabic", "العربية"),
    ("bg", "bul", "Bulgarian", "български"),
    ("bn", "ben", "Bengali", "বাংলা"),
    ("ca", "cat", "Catalan", "català"),
    ("cs", "ces", "Czech", "čeština"),
    ("cy", "cym", "Welsh", "Cymraeg"),
    ("da", "dan", "Danish", "dansk"),
    ("de", "deu", "German", "Deutsch"),
    ("el", "ell", "Greek", "Ελληνικά"),
    ("en", "eng", "English", "English"),
    ("eo", "epo", "Esperanto", "Esperanto"),
    ("es", "spa", "Spanish", "español"),
    ("et", "est", "Estonian", "eesti"),
    ("eu", "eus", "Basque", "euskara"),
    ("fa", "fas", "Persian", "فارسی"),
    ("fi", "fin", "Finnish", "suomi"),
    ("fr", "fra", "French", "français"),
    ("ga", "gle", "Irish", "Gaeilge"),
    ("gl", "glg", "Galician", "galego"),
    ("gu", "guj", "Gujarati", "ગુજરાતી"),
    ("he", "heb", "Hebrew", "עברית"),
    ("hi", "hin", "Hindi", "हिन्दी"),
    ("hr", "hrv", "Croatian", "hrvatski"),
    ("hu", "hun", "Hungarian", "magyar"),
    ("hy", "hye", "Armenian", "հայերեն"),
    ("id", "ind", "Indonesian", "Bahasa Indonesia"),
    ("is", "isl", "Icelandic", "íslenska"),
    ("it", "ita", "Italian", "italiano"),
    ("ja", "jpn", "Japanese", "日本語"),
    ("ka", "kat", "Georgian", "ქართული"),
    ("kk", "kaz", "Kazakh", "қазақ тілі"),
    ("km", "khm", "Khmer", "ខ្មែរ"),
    ("kn", "kan", "Kannada", "ಕನ್ನಡ"),
    ("ko", "kor", "Korean", "한국어"),
    ("lt", "lit", "Lithuanian", "lietuvių"),
    ("lv", "lav", "Latvian", "latviešu"),
    ("mk", "mkd", "Macedonian", "македонски"),
    ("ml", "mal", "Malayalam", "മലയാളം"),
    ("mn", "mon", "Mongolian", "монгол"),
    ("mr", "mar", "Marathi", "मराठी"),
    ("ms", "msa", "Malay", "Bahasa Melayu"),
    ("mt", "mlt", "Maltese", "Malti"),
    ("my", "mya", "Burmese", "မြန်မာ"),
    ("nb", "nob", "Norwegian Bokmål", "norsk bokmål"),
    ("ne", "nep", "Nepali", "नेपाली"),
    ("nl", "nld", "Dutch", "Nederlands"),
    ("nn", "nno", "Norwegian Nynorsk", "norsk nynorsk"),
    ("no", "nor", "Norwegian", "norsk"),
    ("pa", "pan", "Punjabi", "ਪੰਜਾਬੀ"),
    ("pl", "pol", "Polish", "polski"),
    ("pt", "por", "Portuguese", "português"),
    ("ro", "ron", "Romanian", "română"),
    ("ru", "rus", "Russian", "русский"),
    ("sk", "slk", "Slovak", "slovenčina"),
    ("sl", "slv", "Slovenian", "slovenščina"),
    ("sq", "sqi", "Albanian", "shqip"),
    ("sr", "srp", "Serbian", "српски"),
    ("sv", "swe", "Swedish", "svenska"),
    ("sw", "swa", "Swahili", "Kiswahili"),
    ("ta", "tam", "Tamil", "தமிழ்"),
    ("te", "tel", "Telugu", "తెలుగు"),
    ("th", "tha", "Thai", "ไทย"),
    ("tl", "tgl", "Tagalog", "Tagalog"),
    ("tr", "tur", "Turkish", "Türkçe"),
    ("uk", "ukr", "Ukrainian", "українська"),
    ("ur", "urd", "Urdu", "اردو"),
    ("uz", "uzb", "Uzbek", "oʻzbek"),
    ("vi", "vie", "Vietnamese", "Tiếng Việt"),
    ("zh", "zho", "Chinese", "中文"),
    ("zh-Hant", "zho", "Traditional Chinese", "繁體中文"),
)

# Other names people type for a language (lowercase) -> its code.
ALIASES: dict[str, str] = {
    "castilian": "es",
    "castellano": "es",
    "farsi": "fa",
    "filipino": "tl",
    "mandarin": "zh",
    "simplified chinese": "zh",
    "zh-cn": "zh",
    "zh-hans": "zh",
    "zh-tw": "zh-Hant",
    "bokmål": "nb",
    "bokmal": "nb",
    "brazilian portuguese": "pt",
    "pt-br": "pt",
    "flemish": "nl",
    "moldavian": "ro",
}

LANGUAGES: dict[str, Language] = {row[0]: Language(*row) for row in LANGUAGE_TABLE}


def _index() -> dict[str, Language]:
    index: dict[str, Language] = {}
    for language in LANGUAGES.values():
        for key in (language.code, language.name, language.native):
            index.setdefault(key.casefold(), language)
        index.setdefault(language.code3, language)
    for alias, code in ALIASES.items():
        index[alias.casefold()] = LANGUAGES[code]
    return index


_BY_KEY = _index()


def find_language(spec: str) -> Language | None:
    """The language a code or name means (case-insensitive; `en_US` and `en-GB` mean English)."""
    key = spec.strip().casefold().replace("_", "-")
    if not key:
        return None
    if key in _BY_KEY:
        return _BY_KEY[key]
    base = key.split("-", 1)[0]  # a region or script subtag we do not distinguish
    return _BY_KEY.get(base)


def resolve_language(spec: str, option: str = "--to") -> Language:
    """Like find_language, but an unknown name is a BadInputError that says what to write."""
    language = find_language(spec)
    if language is None:
        raise BadInputError(
            f"{option} {spec!r}: unknown language; give a code such as fr, de, es or a name such as French"
        )
    return language
