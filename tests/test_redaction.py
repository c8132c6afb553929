"""Redaction recall on a labelled corpus, benign look-alikes untouched, and the replacement styles."""

import pandas as pd
import pytest

from telemetry_assets.govern.redact import TAGS, Redactor
from tests.conftest import SUMMARY
from tests.pii_corpus import BENIGN, labelled_examples

STRUCTURED = ("email", "phone", "card", "ssn", "iban", "ipv4", "ipv6")


def redact(texts, **options):
    return Redactor(**options).redact(pd.Series(texts, dtype="str"))


def found(out) -> list[dict[str, int]]:
    """Per text, the entities replaced and how often."""
    return [{entity: count for entity, count in row.items() if count} for row in out.counts.to_dict("records")]


def test_corpus_is_large_enough():
    examples = labelled_examples()
    assert len(examples) >= 200 and len(BENIGN) >= 50
    assert {entity for entity, _, _ in examples} == set(TAGS)


def test_recall_on_structured_entities_and_names(record_property):
    """The recall per entity is printed at the end of every run (`tests/conftest.py`)."""
    examples = labelled_examples()
    out = redact([sentence for _, _, sentence in examples])
    caught: dict[str, list[bool]] = {}
    for (entity, value, _), text, counts in zip(examples, out.texts, found(out)):
        hit = value not in text and f"<{TAGS[entity]}>" in text and counts.get(entity, 0) >= 1
        caught.setdefault(entity, []).append(hit)
    for entity, hits in sorted(caught.items()):
        missed = [v for (e, v, _), h in zip([x for x in examples if x[0] == entity], hits) if not h]
        record_property(SUMMARY, f"recall {entity:7s} {sum(hits)}/{len(hits)} = {sum(hits) / len(hits):.3f}  missed: {missed}")
    structured = [hit for entity in STRUCTURED for hit in caught[entity]]
    assert sum(structured) / len(structured) >= 0.99
    assert sum(caught["person"]) / len(caught["person"]) >= 0.8


def test_no_benign_look_alike_is_touched():
    out = redact(BENIGN)
    changed = [(before, after) for before, after in zip(BENIGN, out.texts) if before != after]
    assert changed == []
    assert all(counts == {} for counts in found(out))


def test_look_alikes_between_real_values_keep_each_text_and_count_on_its_own_row():
    """A pass writes back only the candidates it changed: each replaced text and its count must
    land on its own row, with the look-alikes around it left as they were."""
    texts = ["order 4111 1111 1111 1112 shipped", "card 4111 1111 1111 1111 please", None,
             "tracking 4111 1111 1111 1113", "pay with 5500 0000 0000 0004 or 4111 1111 1111 1111"]
    out = redact(texts)
    assert out.texts.tolist()[:2] == ["order 4111 1111 1111 1112 shipped", "card <CARD> please"]
    assert pd.isna(out.texts.iloc[2])
    assert out.texts.tolist()[3:] == ["tracking 4111 1111 1111 1113", "pay with <CARD> or <CARD>"]
    assert found(out) == [{}, {"card": 1}, {}, {}, {"card": 2}]


def test_hash_replacement_is_stable_salted_and_joins():
    texts = ["mail JANE@example.org", "again jane@example.org", "other omar@example.org"]
    first = redact(texts, replacement="hash", salt="s3cret").texts.tolist()
    assert first[0].split()[1] == first[1].split()[1] != first[2].split()[1]
    assert first[0].startswith("mail <EMAIL:") and "jane" not in first[0].lower()
    assert redact(texts, replacement="hash", salt="other").texts.tolist() != first


def test_hash_without_a_salt_is_refused():
    with pytest.raises(ValueError, match="needs a salt"):
        Redactor(replacement="hash")


def test_remove_and_entity_selection():
    out = redact(["card 4111 1111 1111 1111 mail a@b.co"], replacement="remove", entities=("card",))
    assert out.texts.tolist() == ["card  mail a@b.co"] and found(out) == [{"card": 1}]


def test_nulls_stay_null_and_counts_align():
    out = redact([None, "a@b.co", None])
    assert out.texts.isna().tolist() == [True, False, True]
    assert found(out) == [{}, {"email": 1}, {}]
