"""Deterministic English-like text about fictional people, and fact sets to teach.

Pure Python on purpose: the control plane, the demo and the evaluator import it without torch.

The base model (`trainers.base_model.build`) is pretrained on `documents()` and
`conversations()`, so it knows every token and every phrasing used here. `fact_set()` then
makes *new* facts (people that never occur in pretraining) in those same phrasings: what a
continual fine-tuning job can visibly teach a small model (docs/training.md, small base).

Pretraining people and fact-set people never overlap: every name falls in exactly one of the
two pools (`_in_pretraining_pool`), whatever the seeds.
"""

import hashlib
import random
from dataclasses import dataclass

__all__ = ["ATTRIBUTES", "Attribute", "conversations", "documents", "fact_set"]


@dataclass(frozen=True)
class Attribute:
    """One thing a person has, and every way the corpus says it.

    Attributes:
        name: Short key, e.g. "city".
        values: What the attribute can be.
        answer: The canonical sentence, used for answers and for fact-set completions.
        statements: Other sentences that state the same fact (pretraining variety).
        questions: Questions whose answer is `answer`.
    """

    name: str
    values: tuple[str, ...]
    answer: str
    statements: tuple[str, ...]
    questions: tuple[str, ...]


# Word lists read better packed than one item per line.
# fmt: off
CITIES = (
    "Trasku", "Belmora", "Ostvik", "Quenlow", "Ardenfel", "Mirabay", "Dunholt", "Selvano", "Korvath",
    "Elmsby", "Varenne", "Tolmark", "Ishkara", "Brenvale", "Calder", "Norwen", "Pellaro", "Ruskin",
    "Zandor", "Fennick", "Lothar", "Gravona", "Hesper", "Ulmara",
)
PROFESSIONS = (
    "a baker", "a painter", "a sailor", "a teacher", "a doctor", "a farmer", "a miner", "a poet",
    "a weaver", "a carpenter", "a blacksmith", "a gardener", "a fisher", "a potter", "a tailor",
    "a librarian", "a nurse", "a pilot", "a cook", "a mason", "an engineer", "an architect",
    "an astronomer", "an actor",
)
COLOURS = (
    "red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey", "brown", "pink",
    "silver", "gold", "teal", "violet", "crimson",
)
PETS = (
    "cat", "dog", "parrot", "rabbit", "goat", "owl", "tortoise", "hamster", "horse", "ferret", "canary",
    "lizard", "pony", "goldfish", "hedgehog", "duck",
)
INSTRUMENTS = (
    "violin", "flute", "drum", "harp", "piano", "guitar", "cello", "trumpet", "lute", "clarinet",
    "oboe", "banjo", "horn", "organ", "fiddle", "zither",
)
FOODS = (
    "apple pie", "fish soup", "roast lamb", "bean stew", "rice cakes", "cheese bread", "plum jam",
    "mushroom pie", "honey cake", "onion soup", "pear tart", "corn bread", "pea soup", "berry pie",
    "egg noodles", "nut bread",
)
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)
# fmt: on
AGES = tuple(str(age) for age in range(18, 90))

ATTRIBUTES = (
    Attribute(
        "city",
        CITIES,
        answer="{name} lives in {value}.",
        statements=(
            "{name}'s home city is {value}.",
            "{name} has a house in {value}.",
            "The home of {name} is in {value}.",
            "{name} lives in the city of {value}.",
        ),
        questions=(
            "Where does {name} live?",
            "In which city does {name} live?",
            "What is {name}'s home city?",
            "Where is the home of {name}?",
        ),
    ),
    Attribute(
        "profession",
        PROFESSIONS,
        answer="{name} works as {value}.",
        statements=(
            "{name} earns a living as {value}.",
            "By trade, {name} is {value}.",
            "{name} has worked as {value} for many years.",
        ),
        questions=(
            "What does {name} do for a living?",
            "What is {name}'s job?",
            "What work does {name} do?",
        ),
    ),
    Attribute(
        "colour",
        COLOURS,
        answer="{name}'s favourite colour is {value}.",
        statements=(
            "{name} likes {value} more than any other colour.",
            "The colour {name} loves most is {value}.",
            "{name} paints every door {value}.",
        ),
        questions=(
            "What is {name}'s favourite colour?",
            "Which colour does {name} like best?",
            "What colour does {name} love most?",
        ),
    ),
    Attribute(
        "age",
        AGES,
        answer="{name} is {value} years old.",
        statements=(
            "{name} is now {value}.",
            "{name} turned {value} this year.",
            "At {value} years of age, {name} still walks every day.",
        ),
        questions=(
            "How old is {name}?",
            "What is the age of {name}?",
            "What age is {name}?",
        ),
    ),
    Attribute(
        "pet",
        PETS,
        answer="{name} has a pet {value}.",
        statements=(
            "{name} keeps a {value} at home.",
            "The pet of {name} is a {value}.",
            "{name} walks with a pet {value}.",
        ),
        questions=(
            "What pet does {name} have?",
            "Which animal does {name} keep as a pet?",
            "What kind of pet does {name} own?",
        ),
    ),
    Attribute(
        "instrument",
        INSTRUMENTS,
        answer="{name} plays the {value}.",
        statements=(
            "{name} can play the {value} very well.",
            "In the evenings {name} plays the {value}.",
            "The instrument {name} plays is the {value}.",
        ),
        questions=(
            "Which instrument does {name} play?",
            "What instrument does {name} play?",
            "What does {name} play in the evenings?",
        ),
    ),
    Attribute(
        "food",
        FOODS,
        answer="{name}'s favourite food is {value}.",
        statements=(
            "{name} likes to eat {value}.",
            "Above all, {name} loves {value}.",
            "For dinner {name} often makes {value}.",
        ),
        questions=(
            "What is {name}'s favourite food?",
            "What does {name} like to eat most?",
            "Which dish does {name} love?",
        ),
    ),
    Attribute(
        "birth_month",
        MONTHS,
        answer="{name} was born in {value}.",
        statements=(
            "The birthday of {name} is in {value}.",
            "{name} celebrates a birthday every {value}.",
            "{name} came into the world in {value}.",
        ),
        questions=(
            "When was {name} born?",
            "In which month was {name} born?",
            "When is {name}'s birthday?",
        ),
    ),
)

# fmt: off
SYLLABLES = (
    "ve", "lo", "mar", "tra", "sku", "ka", "ri", "dan", "sel", "mo", "bri", "tan", "fe", "nor", "quil",
    "ash", "vi", "ren", "to", "gal", "mi", "ra", "dor", "ul", "ze", "phi", "lan", "or", "ith", "bel",
    "cas", "dun", "eri", "fal", "gor", "hal", "ist", "jor", "kel", "lum", "nes", "oth", "pel", "ros",
    "sul", "tor", "vas", "wyn",
)

# Filler: general sentences so the model also sees plain prose and common words.
SUBJECTS = (
    "The old man", "A young girl", "The farmer", "The children", "My neighbour", "The teacher",
    "A tired traveller", "The captain", "Her brother", "The baker", "Everyone in the village",
    "A small boy", "The mayor", "Our friends", "The doctor", "A stranger",
)
VERBS = (
    "walked to", "looked at", "painted", "carried", "cleaned", "visited", "closed", "opened", "found",
    "lost", "repaired", "sold", "bought", "watched", "left", "remembered",
)
OBJECTS = (
    "the market", "a small boat", "the red door", "the bridge", "an old book", "the garden",
    "the river", "a wooden box", "the window", "the long road", "a letter", "the harbour",
    "the library", "a basket of bread", "the blue house", "the mountain path",
)
ADVERBIALS = (
    "in the morning", "after the rain", "before dinner", "with great care", "without a word",
    "on Sunday", "late at night", "in the spring", "every day", "at noon", "once again", "near the sea",
    "in the cold wind", "under the trees", "at the end of the summer",
)
# fmt: on
OBSERVATIONS = (
    "The weather was calm and the sky was clear.",
    "It rained for three days and the roads turned to mud.",
    "Nobody knew where the path would lead.",
    "The bells rang twice before the shops opened.",
    "In winter the lake freezes and people skate on it.",
    "The market is busy on the first day of the week.",
    "A cold wind came down from the hills.",
    "Most of the houses in the old town are made of stone.",
    "The trains leave the station every hour.",
    "There is a small bakery at the corner of the square.",
    "The sun set slowly behind the mountains.",
    "People say the river was much wider long ago.",
    "The school closes early when it snows.",
    "Travellers often stop here to rest their horses.",
    "The museum keeps maps that are hundreds of years old.",
    "At night the streets are quiet and dark.",
)
CONNECTIVES = ("Later,", "Then", "After that,", "Meanwhile,", "In the end,", "Soon")

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You answer questions about people in short, clear sentences.",
)
PRETRAINING_PEOPLE = 4000


def documents(n: int, seed: int = 0) -> list[str]:
    """Pretraining documents: profiles, questions and answers, stories and plain prose.

    Args:
        n: Number of documents.
        seed: Chooses the people and every random choice; the same seed gives the same text.

    Returns:
        `n` documents of one to a few hundred characters each.
    """
    rng = random.Random(f"documents:{seed}")
    people = _pretraining_people(seed)
    writers = (_profile, _question_answers, _question_answers, _story, _prose)
    return [rng.choice(writers)(rng, people) for _ in range(n)]


def conversations(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """Chat-shaped questions and answers about pretraining people.

    Args:
        n: Number of conversations.
        seed: As for `documents`.

    Returns:
        `n` message lists (`{"role", "content"}`), each ending with an assistant answer.
    """
    rng = random.Random(f"conversations:{seed}")
    people = _pretraining_people(seed)
    result = []
    for _ in range(n):
        messages = []
        if rng.random() < 0.5:
            messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        for _ in range(rng.randint(1, 2)):
            name, profile = rng.choice(people)
            attribute = rng.choice(ATTRIBUTES)
            question = rng.choice(attribute.questions).format(name=name)
            answer = attribute.answer.format(name=name, value=profile[attribute.name])
            messages += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        result.append(messages)
    return result


def fact_set(name: str, n: int = 24, seed: int = 0) -> list[dict[str, str]]:
    """New facts to teach, as `{"prompt", "completion"}` training rows.

    Every fact is about a different person who never occurs in pretraining text, asked with a
    question phrasing the base model has seen, e.g. prompt `"Q: Where does Velomar live?\\nA:"`
    and completion `" Velomar lives in Trasku."`.

    Args:
        name: Names the set; different names give different people and facts.
        n: Number of facts.
        seed: Varies the set for the same name.

    Returns:
        `n` rows, the same ones for the same `(name, n, seed)`.
    """
    rng = random.Random(f"fact_set:{name}:{seed}")
    people: set[str] = set()
    rows = []
    while len(rows) < n:
        person = _person_name(rng, syllables=3)
        if person in people or _in_pretraining_pool(person):
            continue
        people.add(person)
        attribute = ATTRIBUTES[len(rows) % len(ATTRIBUTES)]
        question = rng.choice(attribute.questions).format(name=person)
        answer = attribute.answer.format(name=person, value=rng.choice(attribute.values))
        rows.append({"prompt": f"Q: {question}\nA:", "completion": f" {answer}"})
    return rows


# ---------------------------------------------------------------------------------------------
# Helpers, in call order.

Person = tuple[str, dict[str, str]]


def _pretraining_people(seed: int) -> list[Person]:
    rng = random.Random(f"people:{seed}")
    people: dict[str, dict[str, str]] = {}
    while len(people) < PRETRAINING_PEOPLE:
        name = _person_name(rng, syllables=rng.choice((2, 3)))
        if name in people or not _in_pretraining_pool(name):
            continue
        people[name] = {attribute.name: rng.choice(attribute.values) for attribute in ATTRIBUTES}
    return list(people.items())


def _person_name(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def _in_pretraining_pool(name: str) -> bool:
    # A fixed hash splits all possible names in two pools, so no seed can make a fact-set
    # person appear in pretraining text.
    return hashlib.sha256(name.encode()).digest()[0] % 2 == 0


def _profile(rng: random.Random, people: list[Person]) -> str:
    name, profile = rng.choice(people)
    attributes = rng.sample(ATTRIBUTES, rng.randint(3, 6))
    sentences = []
    for attribute in attributes:
        template = rng.choice((attribute.answer, *attribute.statements))
        sentences.append(template.format(name=name, value=profile[attribute.name]))
    if rng.random() < 0.5:
        sentences.insert(rng.randint(0, len(sentences)), rng.choice(OBSERVATIONS))
    return " ".join(sentences)


def _question_answers(rng: random.Random, people: list[Person]) -> str:
    pairs = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        name, profile = rng.choice(people)
        attribute = rng.choice(ATTRIBUTES)
        question = rng.choice(attribute.questions).format(name=name)
        answer = attribute.answer.format(name=name, value=profile[attribute.name])
        pairs.append(f"Q: {question}\nA: {answer}")
    return "\n\n".join(pairs)


def _story(rng: random.Random, people: list[Person]) -> str:
    name, profile = rng.choice(people)
    attribute = rng.choice(ATTRIBUTES)
    sentences = [attribute.answer.format(name=name, value=profile[attribute.name])]
    for _ in range(rng.randint(2, 4)):
        sentence = f"{name} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(ADVERBIALS)}."
        if rng.random() < 0.3:
            sentence = f"{rng.choice(CONNECTIVES)} {sentence}"
        sentences.append(sentence)
    return " ".join(sentences)


def _prose(rng: random.Random, people: list[Person]) -> str:
    sentences = []
    for _ in range(rng.randint(3, 7)):
        if rng.random() < 0.35:
            sentences.append(rng.choice(OBSERVATIONS))
            continue
        sentence = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        sentences.append(f"{sentence} {rng.choice(ADVERBIALS)}.")
    return " ".join(sentences)
