"""The generated corpus: deterministic, varied, and fact sets that teach something new."""

import re
import subprocess
import sys

from trainers.base_model.corpus import ATTRIBUTES, conversations, documents, fact_set


class TestDocuments:
    def test_same_seed_same_text_and_other_seed_other_text(self) -> None:
        assert documents(200, seed=3) == documents(200, seed=3)
        assert documents(200, seed=3) != documents(200, seed=4)

    def test_every_question_and_answer_phrasing_occurs(self) -> None:
        text = "\n".join(documents(6000))
        for attribute in ATTRIBUTES:
            for template in (*attribute.questions, attribute.answer, *attribute.statements):
                pattern = re.escape(template).replace(r"\{name\}", "[A-Z][a-z]+")
                pattern = pattern.replace(r"\{value\}", "[A-Za-z0-9 ]+")
                assert re.search(pattern, text), f"{attribute.name}: {template!r} never appears"

    def test_mixes_profiles_questions_and_prose(self) -> None:
        docs = documents(500)
        assert sum(doc.startswith("Q: ") for doc in docs) > 100
        assert sum("\nA: " not in doc for doc in docs) > 100

    def test_conversations_end_with_an_assistant_answer(self) -> None:
        for messages in conversations(50):
            assert messages[-1]["role"] == "assistant"
            assert {m["role"] for m in messages} <= {"system", "user", "assistant"}


class TestFactSet:
    def test_deterministic_per_name_and_seed(self) -> None:
        assert fact_set("geo") == fact_set("geo")
        assert fact_set("geo") != fact_set("music")
        assert fact_set("geo", seed=0) != fact_set("geo", seed=1)

    def test_rows_are_question_prompts_with_answer_completions(self) -> None:
        rows = fact_set("geo", n=24)
        assert len(rows) == 24
        for row in rows:
            assert set(row) == {"prompt", "completion"}
            person = row["completion"].split()[0].removesuffix("'s")
            assert row["prompt"].startswith("Q: ")
            assert row["prompt"].endswith("\nA:")
            assert person in row["prompt"]
        people = {row["completion"].split()[0].removesuffix("'s") for row in rows}
        assert len(people) == 24

    def test_people_never_occur_in_pretraining_text(self) -> None:
        words = set(re.findall(r"[A-Z][a-z]+", " ".join(documents(20000))))
        for row in fact_set("geo", n=24) + fact_set("music", n=24, seed=5):
            person = row["completion"].split()[0].removesuffix("'s")
            assert person not in words

    def test_uses_the_phrasings_of_pretraining(self) -> None:
        questions = {q for attribute in ATTRIBUTES for q in attribute.questions}
        for row in fact_set("geo", n=24):
            question = row["prompt"].removeprefix("Q: ").removesuffix("\nA:")
            person = row["completion"].split()[0].removesuffix("'s")
            assert question.replace(person, "{name}") in questions


def test_importing_the_corpus_does_not_import_torch() -> None:
    code = "import sys, trainers.base_model.corpus; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
