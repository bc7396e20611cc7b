"""The fuzzy text match the WebShop reward uses for attributes and options (WEBSHOP_SPEC §4.2-4.3).

WebShop calls thefuzz's ``token_set_ratio``. The reference rewards were computed with thefuzz
0.22.1 on rapidfuzz 3.14.6, where that call does, in order:

1. ``str()`` of each input (so a tuple is compared as its printed form);
2. deletes the characters U+0080..U+00FF (thefuzz's ``force_ascii``; other non-ASCII characters,
   e.g. "–" or "”", are kept and then treated as separators by step 3);
3. rapidfuzz's ``default_process``: lowercase, non-alphanumerics to spaces, trim;
4. rapidfuzz's ``token_set_ratio`` on the processed strings, rounded to an integer.

A pair matches when that integer is **> 85**. We depend on rapidfuzz only, so we replicate
steps 1-4 here; calling rapidfuzz's scorer directly would skip step 2 and the rounding, which
changes borderline matches (a raw 85.4 rounds to 85 and does not match).
"""

from __future__ import annotations

import functools
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

FUZZY_MATCH_THRESHOLD = 85  # a match needs a rounded score strictly above this
PREPROCESS_CACHE_SIZE = 1 << 16  # the same attribute and option strings recur on every purchase

# thefuzz's "ascii dammit" table: delete the Latin-1 block, keep everything else.
_DROP_LATIN1 = {code: None for code in range(128, 256)}


def preprocess(text: Any) -> str:
    """Steps 1-3 above: the string thefuzz actually scores."""
    return _preprocess_str(text if isinstance(text, str) else str(text))


@functools.lru_cache(maxsize=PREPROCESS_CACHE_SIZE)
def _preprocess_str(text: str) -> str:
    if not text.isascii():
        text = text.translate(_DROP_LATIN1)
    return default_process(text)


def token_set_score(a: Any, b: Any) -> int:
    """thefuzz-0.22-compatible ``token_set_ratio``: 0-100, rounded like ``int(round(x))``.

    ``None`` on either side scores 0, as in thefuzz. A side that is empty after preprocessing
    also scores 0 (rapidfuzz's rule).
    """
    if a is None or b is None:
        return 0
    return int(round(fuzz.token_set_ratio(preprocess(a), preprocess(b))))


def is_fuzzy_match(a: Any, b: Any) -> bool:
    """True when WebShop counts ``a`` and ``b`` as the same attribute or option (score > 85)."""
    return token_set_score(a, b) > FUZZY_MATCH_THRESHOLD
