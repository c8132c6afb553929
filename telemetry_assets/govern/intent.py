"""Intent classification: explainable keyword rules, scored for a whole column at once.

Each intent's keywords become one case-insensitive RE2 alternation; its hit count per prompt is
computed by pyarrow over the column, and the intent with the most hits wins (ties: the intent
listed first in `intents.yaml`, so risk outranks convenience). A prompt with no hit is `other`.
The rules file is the explanation: every label traces to the words that produced it.

Sampling (policy `intent.sample_rate`) is by conversation: the first 32 bits of md5(conversation_id)
pick the same conversations on every run and every machine. The rules are cheap, so every prompt
is scored; an unsampled prompt keeps its label only when it is an `always_classify` intent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from telemetry_assets import settings
from telemetry_assets.config_files import load_versioned_yaml

OTHER = "other"


class IntentRulesError(ValueError):
    """The intent rules file is not valid; the message names the offending key."""


@dataclass(frozen=True)
class IntentRules:
    version: str
    keywords: dict[str, tuple[str, ...]]

    @classmethod
    def load(cls, path: Path | None = None) -> "IntentRules":
        """The rules in `path` (by default `TELEMETRY_INTENTS`, else the shipped file), checked whole:
        a lone string where a list of keywords belongs would be read as its letters, and every
        prompt containing an `a` would get that intent."""
        raw = load_versioned_yaml(path or settings.intents_path(), IntentRulesError,
                                  {"version", "changes", "intents"}, {"intents"})
        intents = raw["intents"]
        if not isinstance(intents, dict) or not intents:
            raise IntentRulesError("intents: must map each intent's name to its list of keywords")
        for name, words in intents.items():
            _check_intent(name, words)
        return cls(str(raw["version"]), {name: tuple(words) for name, words in intents.items()})

    @property
    def labels(self) -> tuple[str, ...]:
        return (*self.keywords, OTHER)


def classify(texts: pd.Series, rules: IntentRules) -> pd.Series:
    """The best intent per text (`other` when nothing matches; NULL text gives NULL)."""
    values = pa.array(texts.astype("str"), from_pandas=True, type=pa.large_string())
    scores = np.zeros((len(values), len(rules.keywords)), dtype=np.int64)
    for column, words in enumerate(rules.keywords.values()):
        hits = pc.count_substring_regex(values, _alternation(words), ignore_case=True)
        scores[:, column] = pc.fill_null(hits, 0).to_numpy(zero_copy_only=False)
    names = np.array([*rules.keywords, OTHER], dtype=object)
    best = np.where(scores.max(axis=1, initial=0) > 0, scores.argmax(axis=1), len(rules.keywords))
    return pd.Series(names[best], index=texts.index, dtype="str").where(texts.notna())


def in_sample_sql(conversation_id: str, rate: float) -> str:
    """SQL for whether a conversation is sampled: the first 32 bits of md5(conversation_id), as a
    share of 2^32, below `rate`. A prompt without a conversation is not sampled."""
    return f"coalesce(('0x' || md5({conversation_id})[1:8])::UBIGINT / 4294967296 < {float(rate)!r}, false)"


def _check_intent(name, words) -> None:
    if not isinstance(name, str) or not name.strip():
        raise IntentRulesError(f"intents: {name!r} is not an intent name")
    if name == OTHER:
        raise IntentRulesError(f"intents.{OTHER}: is what a prompt no keyword matches gets; it has no keywords")
    if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
        raise IntentRulesError(f"intents.{name}: {words!r} is not a list of keywords (words or phrases)")


def _alternation(words: tuple[str, ...]) -> str:
    return r"\b(?:" + "|".join(re.escape(word) for word in words) + r")\b"
