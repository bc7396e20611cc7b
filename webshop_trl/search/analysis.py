"""A pure-Python approximation of Lucene's English analyzer, for the Java-free bm25s engine.

The bm25s engine ranks closest to WebShop when both index the same terms. Anserini's
``DefaultEnglishAnalyzer`` chain is: StandardTokenizer (Unicode UAX#29 word boundaries) ->
EnglishPossessiveFilter (drops a trailing 's) -> LowerCaseFilter -> StopFilter (Lucene's 33 English
stop words) -> PorterStemFilter. It is mirrored here with a regular expression for the word rules
that matter for product text and Lucene's own Porter variant (`webshop_trl.search.porter`); bm25s's
own tokenizer (a ``\\w\\w+`` pattern, a long stop list, a Snowball stemmer) would change many
more terms.

Known gaps (rare in product text): emoji, Katakana and some scripts' rules of UAX#29 are not
reproduced; Han and Hiragana characters are emitted one per token as StandardTokenizer does.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from webshop_trl.search.porter import stem as porter_stem

#: org.apache.lucene.analysis.en.EnglishAnalyzer.ENGLISH_STOP_WORDS_SET
LUCENE_ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)
MAX_TOKEN_LENGTH = 255  # StandardTokenizer splits longer words into 255-character pieces

_LETTER = r"[^\W\d_]"
# UAX#29 joiners: MidLetter (between letters), MidNum (between digits), MidNumLet (either)
_MID_LETTER = ":\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a"
_MID_NUM = ",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"
_MID_NUM_LET = ".'\u2018\u2019\u2024\ufe52\uff07\uff0e"
# Symbols StandardTokenizer emits as one-character <EMOJI> tokens (the So/Sm code points that
# Lucene 9 tokenizes on their own, measured with Anserini 1.7.1's analyzer), plus ZWJ sequences.
_PICTO = (
    "\u00a9\u00ae\u2122\u2194-\u2199\u21a9-\u21aa\u231a-\u231b\u2328\u2388\u23cf\u23e9-\u23f3"
    "\u23f8-\u23fa\u25aa-\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u2605\u2607-\u2612\u2614-\u2685"
    "\u2690-\u2705\u2708-\u2712\u2714\u2716\u271d\u2721\u2728\u2733-\u2734\u2744\u2747\u274c"
    "\u274e\u2753-\u2755\u2757\u2763-\u2767\u2795-\u2797\u27a1\u27b0\u27bf\u2934-\u2935"
    "\u2b05-\u2b07\u2b1b-\u2b1c\u2b50\u2b55\u3297\u3299"
    "\U0001f000-\U0001f0ff\U0001f10d-\U0001f10f\U0001f12f-\U0001f1ad\U0001f200-\U0001f265"
    "\U0001f300-\U0001f53d\U0001f546-\U0001f64f\U0001f680-\U0001f6fc\U0001f7d5-\U0001f7f0"
    "\U0001f8b0-\U0001f8b1\U0001f90c-\U0001f93a\U0001f93c-\U0001f945\U0001f947-\U0001faff"
)
_EMOJI = rf"[{_PICTO}][\ufe0f\U0001f3fb-\U0001f3ff]?(?:\u200d[{_PICTO}][\ufe0f\U0001f3fb-\U0001f3ff]?)*"
# UAX#29 Extend/Format characters (combining marks, variation selectors, joiners, halfwidth kana
# sound marks, soft hyphen): they stay inside the word they follow and never start one
_EXTEND = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
    "\ufe00-\ufe0f\ufe20-\ufe2f\uff9e\uff9f\u00ad\u200c-\u200f\u2060-\u2064\ufeff"
)
_RUN = rf"\w[\w{_EXTEND}]*"
# A word: runs of letters/digits/underscore (ExtendNumLet), joined by a MidLetter/MidNumLet
# between two letters or a MidNum/MidNumLet between two digits. A lone "_" is no word.
_WORD = re.compile(
    rf"{_EMOJI}|(?=_*[^\W_]){_RUN}(?:(?:(?<={_LETTER})[{_MID_LETTER}{_MID_NUM_LET}](?={_LETTER})"
    rf"|(?<=\d)[{_MID_NUM}{_MID_NUM_LET}](?=\d)){_RUN})*"
)
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_HALFWIDTH_SOUND_MARKS = "\uff9e\uff9f"


def _single_char_script(ch: str) -> bool:
    """Han and Hiragana: StandardTokenizer emits these one character per token."""
    cp = ord(ch)
    return 0x3040 <= cp <= 0x309F or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x2FA1F


def _rewrite_non_ascii(match: re.Match) -> str:
    """Make a run of non-ASCII characters split as StandardTokenizer splits it:
    - "other numbers" (superscripts, fractions, circled digits) are no word characters, though
      Python's \\w matches them;
    - halfwidth kana sound marks (Extend) stay in a word they follow but alone are no word;
    - Han and Hiragana characters become words of their own."""
    out = []
    previous = match.string[match.start() - 1] if match.start() > 0 else " "
    for ch in match.group():
        if unicodedata.category(ch) == "No":
            ch = " "
        elif ch in _HALFWIDTH_SOUND_MARKS and not (previous.isalnum() or previous == "_" or previous in _HALFWIDTH_SOUND_MARKS):
            ch = " "
        elif _single_char_script(ch):
            ch = f" {ch} "
        out.append(ch)
        previous = ch[-1]
    return "".join(out)


_POSSESSIVE = ("'s", "\u2019s", "\uff07s")  # EnglishPossessiveFilter's apostrophes


def tokenize(text: str) -> list[str]:
    """StandardTokenizer-like word splitting (case kept)."""
    if not text.isascii():
        text = _NON_ASCII_RUN.sub(_rewrite_non_ascii, text)
    words: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        if len(word) <= MAX_TOKEN_LENGTH:
            words.append(word)
        else:
            words.extend(word[i : i + MAX_TOKEN_LENGTH] for i in range(0, len(word), MAX_TOKEN_LENGTH))
    return words


def analyze(text: str, stopwords: frozenset[str] = LUCENE_ENGLISH_STOP_WORDS, stem: bool = True) -> list[str]:
    """Index/query terms of ``text``: tokenize, drop possessive 's, lowercase, drop stop words, stem."""
    terms: list[str] = []
    for word in tokenize(text):
        if word[-2:].lower() in _POSSESSIVE:
            word = word[:-2]
        word = word.lower()
        if word and word not in stopwords:
            terms.append(word)
    if stem:
        terms = [porter_stem(t) for t in terms]
    return terms
