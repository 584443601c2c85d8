"""The task streams of the continual-learning benchmark: two families, three task kinds each. Torch-free.

A *family* is three tasks of different kinds, each in its own phrasing:

- **facts**: new facts about made-up entities as chat question and answer;
- **skill**: a format the model must apply to items it has never seen;
- **text**: plain prose about a made-up domain (no chat template), whose facts are asked back as
  sentence completions.

The `dev` family is the one method defaults may be chosen on; the `test` family shares no
entity, attribute, phrasing or skill with it, and no default was tuned on it. Results of the two
are reported apart (docs/benchmarks.md).

Nothing scored is trained on. A fact is taught in two phrasings and asked back in a third; the
entities are split between the *validation* probes (what a method's controller and continual
evaluation read while a job trains) and the *test* probes (what the benchmark scores after each
task). A skill's validation and test items are items the job never saw. Probes are recall items
in the layout of `eval.probes.Probes.recall` (`context`, `cue`, `continuation`), so the trainer's
continual evaluator reads a validation file as it reads a job's probes.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainers.base_model.corpus import ATTRIBUTES, MONTHS

__all__ = ["FAMILIES", "Task", "family", "task_orders"]

TRAIN_PHRASINGS = 2  # a fact is taught in this many phrasings and asked back in one more


@dataclass(frozen=True)
class Task:
    """One task of a stream.

    Attributes:
        name: Short name for tables, e.g. `"dev-facts"`.
        kind: `"facts"`, `"skill"` or `"text"`.
        train: The training file's rows (`messages` or `text`).
        validation: Recall items a job's continual evaluation (and a method's controller) reads.
        test: Recall items the benchmark scores; disjoint from `validation`.
    """

    name: str
    kind: str
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    test: list[dict[str, Any]]


@dataclass(frozen=True)
class _Fact:
    """One attribute of an entity, as taught and as asked back.

    Attributes:
        taught: `TRAIN_PHRASINGS` statements (text tasks) or (question, answer) pairs (facts tasks).
        asked: The held-out phrasing: a question (facts) or a sentence start (text).
        answer: What must follow `asked`.
    """

    taught: tuple[Any, ...]
    asked: str
    answer: str


# ---------------------------------------------------------------------------------------------
# The families.


def family(name: str, seed: int = 0) -> list[Task]:
    """The three tasks of family `name` (`"dev"` or `"test"`), drawn with `seed`.

    Different seeds give different entities, values and skill items in the same phrasings.
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose from {sorted(FAMILIES)}")
    spec, rng = FAMILIES[name], random.Random(f"cl-family:{name}:{seed}")
    facts = []
    for i, entity in enumerate(_names(rng, name, 24, spec.fact_syllables)):
        questions, answer, values = spec.facts[i % len(spec.facts)]
        answer = answer.format(name=entity, value=rng.choice(values))
        asked = [question.format(name=entity) for question in questions]
        taught = tuple((question, answer) for question in asked[:TRAIN_PHRASINGS])
        facts.append(_Fact(taught, asked[TRAIN_PHRASINGS], answer))
    entities = _names(rng, name, 12, spec.prose_syllables)
    prose = [
        _prose_fact(rng, entity.lower() if spec.lower_prose_names else entity, attribute)
        for entity in entities
        for attribute in spec.prose
    ]
    return [
        _facts_task(f"{name}-{spec.names[0]}", facts, rng),
        _skill_task(f"{name}-{spec.names[1]}", spec.skill, rng),
        _text_task(f"{name}-{spec.names[2]}", prose, len(spec.prose), rng),
    ]


def task_orders(tasks: int) -> list[list[int]]:
    """The task orders seeds cycle through: every rotation, so each task comes first, middle and last."""
    return [[(start + i) % tasks for i in range(tasks)] for start in range(tasks)]


@dataclass(frozen=True)
class _Family:
    """How a family's tasks are drawn.

    Attributes:
        names: Its facts, skill and prose tasks' names (after the family's).
        facts: Per attribute (cycled over 24 entities): questions (`TRAIN_PHRASINGS` taught, the
            next one asked back), the answer, its values.
        fact_syllables: Syllables of the facts' entity names.
        skill: Draws one (question, answer) item of the skill.
        prose: Per attribute of each of 12 prose entities: taught statements, the asked sentence
            start, values.
        prose_syllables: Syllables of the prose entities' names.
        lower_prose_names: Prose entities are common nouns (a creature), not names (a planet).
    """

    names: tuple[str, str, str]
    facts: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...]
    fact_syllables: int
    skill: Callable[[random.Random], tuple[str, str]]
    prose: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...]
    prose_syllables: int
    lower_prose_names: bool = False


# (questions: two taught, one asked back; the answer; its values): the test family's facts.
_PRODUCT_FACTS = (
    (
        (
            "Which company makes the {name}?",
            "Who manufactures the {name}?",
            "Who is the maker of the {name}?",
        ),
        "The {name} is made by {value}.",
        ("Orlin Tools", "Vask Industries", "Pemberly & Sons", "Tarrow Labs", "Quill Motors", "Hexa Foundry"),
    ),
    (
        (
            "What is the {name} made of?",
            "Which material is the {name} built from?",
            "From what is the {name} built?",
        ),
        "The {name} is built from {value}.",
        ("oak", "copper", "glass", "bamboo", "granite", "brass", "felt", "cedar"),
    ),
    (
        (
            "When did the {name} go on sale?",
            "In what year was the {name} released?",
            "What year did the {name} come out?",
        ),
        "The {name} went on sale in {value}.",
        tuple(str(year) for year in range(1961, 1999, 3)),
    ),
)
# (two taught statements, the asked sentence start, values) of the text tasks' entities.
_CREATURE_HABITAT = (
    ("The {name} lives in {value}.", "Most {name}s make their homes in {value}."),
    "Anyone hoping to see a {name} should look in",
    (
        "marshes",
        "pine forests",
        "sea caves",
        "sand dunes",
        "reed beds",
        "old mines",
        "hedgerows",
        "ice fields",
    ),
)
_CREATURE_FOOD = (
    ("A {name} eats {value}.", "The diet of the {name} is mostly {value}."),
    "What a {name} likes to eat most is",
    ("beetles", "moss", "river snails", "acorns", "moths", "seaweed", "wild honey", "clover"),
)
_PLANET_SKY = (
    ("The sky over {name} is {value}.", "Visitors to {name} see a {value} sky."),
    "Look up on {name} and the sky you see is",
    ("amber", "violet", "pale green", "deep red", "silver", "orange", "indigo", "white"),
)
_PLANET_EXPORT = (
    ("{name} trades mainly in {value}.", "The main export of {name} is {value}."),
    "Merchants who land on {name} come to buy",
    ("salt", "iron ore", "spices", "timber", "crystal", "wool", "tea", "copper wire"),
)


# ---------------------------------------------------------------------------------------------
# Task builders.


def _facts_task(name: str, facts: list[_Fact], rng: random.Random) -> Task:
    """Chat rows, one per taught phrasing; asked back in the held-out one."""
    train = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for fact in facts
        for q, a in fact.taught
    ]
    probes = [_item([{"role": "user", "content": fact.asked}], fact.answer) for fact in facts]
    return _split(name, "facts", train, probes, rng)


def _text_task(name: str, facts: list[_Fact], per_entity: int, rng: random.Random) -> Task:
    """Text rows: each entity's facts in one paragraph per phrasing; asked back as sentence completions."""
    train = []
    for start in range(0, len(facts), per_entity):
        entity = facts[start : start + per_entity]
        for phrasing in range(TRAIN_PHRASINGS):
            train.append({"text": " ".join(fact.taught[phrasing] for fact in entity)})
    probes = [_item("", fact.answer, cue=fact.asked) for fact in facts]
    return _split(name, "text", train, probes, rng)


def _skill_task(name: str, draw: Any, rng: random.Random, train: int = 32, held_out: int = 32) -> Task:
    """`train` distinct items to learn the format on, `held_out` others to apply it to."""
    items: dict[str, str] = {}
    while len(items) < train + held_out:
        question, answer = draw(rng)
        items[question] = answer
    pairs = list(items.items())
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in pairs[:train]
    ]
    probes = [_item([{"role": "user", "content": q}], a) for q, a in pairs[train:]]
    return _split(name, "skill", rows, probes, rng)


def _split(
    name: str, kind: str, train: list[dict[str, Any]], probes: list[dict[str, Any]], rng: random.Random
) -> Task:
    """A quarter of the probes (shuffled) for validation, the rest for the test."""
    probes = probes[:]
    rng.shuffle(probes)
    rng.shuffle(train)
    cut = len(probes) // 4
    return Task(name, kind, train, probes[:cut], probes[cut:])


def _item(context: str | list[dict[str, str]], answer: str, cue: str = "") -> dict[str, Any]:
    """A recall item (`eval.probes` layout): greedy decoding after context + cue must give `answer`."""
    return {"row": -1, "context": context, "cue": cue, "continuation": f" {answer}" if cue else answer}


def _prose_fact(rng: random.Random, entity: str, attribute: tuple[Any, ...]) -> _Fact:
    statements, asked, values = attribute
    value = rng.choice(values)
    taught = tuple(statement.format(name=entity, value=value) for statement in statements)
    return _Fact(taught, asked.format(name=entity), value)


def _date_item(rng: random.Random) -> tuple[str, str]:
    """The dev skill: an ISO date written out, e.g. 2031-04-07 -> 7 April 2031."""
    year, month, day = rng.randrange(1950, 2050), rng.randrange(12), rng.randrange(1, 29)
    return f"Write the date {year}-{month + 1:02d}-{day:02d} in words.", f"{day} {MONTHS[month]} {year}"


def _clock_item(rng: random.Random) -> tuple[str, str]:
    """The test skill: a 24-hour time on the 12-hour clock, e.g. 14:05 -> 2:05 pm."""
    hour, minute = rng.randrange(24), rng.randrange(60)
    twelve = hour % 12 or 12
    return (
        f"What is {hour:02d}:{minute:02d} on a 12-hour clock?",
        f"{twelve}:{minute:02d} {'am' if hour < 12 else 'pm'}",
    )


# Each family makes its names from its own syllables, so no entity of one is an entity of the other.
# fmt: off
_SYLLABLES = {
    "dev": ("ka", "lo", "mir", "ven", "ta", "dra", "sol", "quen"),
    "test": ("bri", "zo", "fal", "ush", "ne", "tor", "ith", "gau"),
}
# fmt: on


def _names(rng: random.Random, family: str, count: int, syllables: int) -> list[str]:
    """`count` different made-up capitalised names of `family`'s syllables, e.g. Mirvendra."""
    names: dict[str, None] = {}
    while len(names) < count:
        names["".join(rng.choice(_SYLLABLES[family]) for _ in range(syllables)).capitalize()] = None
    return list(names)


# The dev family's facts are the pretraining corpus's attributes (its people, their city, pet, ...).
_PEOPLE_FACTS = tuple((attribute.questions, attribute.answer, attribute.values) for attribute in ATTRIBUTES)
FAMILIES = {
    "dev": _Family(
        names=("facts", "dates", "creatures"),
        facts=_PEOPLE_FACTS,
        fact_syllables=3,
        skill=_date_item,
        prose=(_CREATURE_HABITAT, _CREATURE_FOOD),
        prose_syllables=2,
        lower_prose_names=True,
    ),
    "test": _Family(
        names=("products", "clock", "planets"),
        facts=_PRODUCT_FACTS,
        fact_syllables=2,
        skill=_clock_item,
        prose=(_PLANET_SKY, _PLANET_EXPORT),
        prose_syllables=3,
    ),
}
