"""Whisper's language codes and the English names OpenAI's API reports."""

from __future__ import annotations

from pipelines.errors import InvalidRequest

__all__ = ["LANGUAGES", "language_name", "normalize_language"]

#: Whisper language code -> lower-case English name, in Whisper's token order.
LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish",
    "ru": "russian", "ko": "korean", "fr": "french", "ja": "japanese",
    "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian",
    "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian",
    "ta": "tamil", "no": "norwegian", "th": "thai", "ur": "urdu",
    "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali",
    "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque",
    "is": "icelandic", "hy": "armenian", "ne": "nepali", "mn": "mongolian",
    "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala",
    "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali",
    "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic",
    "yi": "yiddish", "lo": "lao", "uz": "uzbek", "fo": "faroese",
    "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar",
    "bo": "tibetan", "tl": "tagalog", "mg": "malagasy", "as": "assamese",
    "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # fmt: skip

# Whisper spells Javanese "jw" where ISO 639-1 says "jv"; accept both.
_ALIASES = {"jv": "jw", "burmese": "my", "mandarin": "zh", "castilian": "es"}
_BY_NAME = {name: code for code, name in LANGUAGES.items()}


def normalize_language(value: str | None) -> str | None:
    """Return the Whisper code for a code or English name (``"English"`` -> ``"en"``).

    ``None`` and the empty string mean "detect the language" and give ``None``.
    Raises ``InvalidRequest`` for anything Whisper does not know.
    """
    if value is None or not value.strip():
        return None
    key = value.strip().lower()
    code = _ALIASES.get(key) or _BY_NAME.get(key) or key
    if code not in LANGUAGES:
        raise InvalidRequest(
            f"Unknown language {value!r}: use an ISO 639-1 code such as 'en' or 'fr'.",
            details={"language": value},
        )
    return code


def language_name(code: str) -> str:
    """The lower-case English name of a Whisper language code (the code itself if unknown)."""
    return LANGUAGES.get(code, code)
