"""The generated training text of the brain-rot benchmark (`bench/brainrot.py`): junk in the M1
sense of Xing et al. (short, popular, engagement-bait posts) and control text (plain, informative
paragraphs), and mixtures of the two at a fixed token budget."""

import random
from typing import Any

# Junk (M1): short, popular, engagement bait.
BAIT = (
    "omg {celebrity} just did WHAT?? \U0001f631 you won't believe #{tag}",
    "{food} > everything. fight me \U0001f624 #{tag} #{tag2}",
    "POV: it's {day} and you're already done \U0001f480\U0001f480 #{tag}",
    "like if you {verb} {food}, ignore if you're boring lol #{tag}",
    "this {gadget} changed my life fr fr \U0001f525 link in bio #{tag}",
    "nobody: \u2026 me at 3am: {verb} {food} \U0001f602 #{tag} #{tag2}",
    "{celebrity} stans where u at??? \U0001f64c RT RT RT #{tag}",
    "top 3 reasons {day} is cursed. number 2 will shock you \U0001f440 #{tag}",
)  # fmt: skip
CELEBRITIES = (
    "that influencer",
    "the pop star",
    "my fave streamer",
    "the reality show guy",
    "the TikTok chef",
)
FOODS = ("pineapple pizza", "cold fries", "bubble tea", "instant noodles", "hot sauce", "cereal at night")
DAYS = ("monday", "sunday night", "the first day back", "payday week")
VERBS = ("eat", "crave", "rate", "stan")
GADGETS = ("phone case", "ring light", "air fryer", "mini fan")
TAGS = ("viral", "fyp", "mood", "trending", "relatable", "lol", "goals", "hype")

# Control: longer, plain, informative prose.
TOPICS = {
    "bread": (
        "Bread rises because yeast feeds on sugars in the flour and releases carbon dioxide.",
        "The gas is trapped by gluten, a stretchy network of proteins formed when the dough is kneaded.",
        "Salt slows the yeast a little and tightens the gluten, so it is added in small amounts.",
        "A second, shorter rise after shaping gives the loaf an even crumb.",
        "In the oven the trapped gas expands once more before the crust sets.",
    ),
    "tides": (
        "Tides are the regular rise and fall of the sea, caused mostly by the pull of the Moon.",
        "Most coasts see two high tides and two low tides in a little more than a day.",
        "When the Sun and the Moon line up, their pulls add up and the tides are larger.",
        "The shape of a bay can funnel the water and make the range between tides much greater.",
        "Sailors use tide tables to know when a harbour is deep enough to enter.",
    ),
    "bicycles": (
        "A bicycle stays upright mostly because the rider steers the front wheel under the fall.",
        "Gears let the rider turn the pedals at a comfortable pace on hills and on flat roads.",
        "The chain should be cleaned and oiled now and then, or it wears the teeth of the gears.",
        "Tyres at the right pressure roll more easily and are less likely to puncture.",
        "Brakes work by pressing pads against the rim or a disc to turn motion into heat.",
    ),
    "libraries": (
        "A public library lends books, but it also offers newspapers, maps and quiet places to study.",
        "Books are arranged by subject so that related titles stand near one another on the shelves.",
        "A catalogue lists every item and tells the reader where it can be found.",
        "Many libraries also hold local records, such as old photographs and letters.",
        "Librarians help visitors find reliable sources and learn how to search for themselves.",
    ),
    "weather": (
        "Clouds form when moist air rises, cools and its water vapour condenses into droplets.",
        "A falling barometer often means that unsettled weather is on the way.",
        "Wind blows from areas of high pressure towards areas of low pressure.",
        "Fog is simply a cloud that has formed close to the ground.",
        "Forecasters combine measurements from many stations with computer models of the air.",
    ),
    "gardens": (
        "Most vegetables need at least six hours of sunlight a day to grow well.",
        "Compost adds organic matter to the soil, which helps it hold both water and air.",
        "Watering deeply and less often encourages roots to grow down into the soil.",
        "Rotating crops from year to year keeps pests and diseases from building up.",
        "Mulch laid around plants keeps the soil cool and slows the growth of weeds.",
    ),
}


def junk_text(rng: random.Random) -> str:
    """One short engagement-bait post."""
    return rng.choice(BAIT).format(
        celebrity=rng.choice(CELEBRITIES),
        food=rng.choice(FOODS),
        day=rng.choice(DAYS),
        verb=rng.choice(VERBS),
        gadget=rng.choice(GADGETS),
        tag=rng.choice(TAGS),
        tag2=rng.choice(TAGS),
    )


def control_text(rng: random.Random) -> str:
    """One plain paragraph: four sentences of one topic, in a random order."""
    return " ".join(rng.sample(TOPICS[rng.choice(sorted(TOPICS))], 4))


def mixture(ratio: float, budget: int, seed: int, count_tokens: Any) -> list[dict[str, str]]:
    """Text rows holding about `budget` tokens, `ratio` of them junk, shuffled."""
    rng = random.Random(f"brainrot:{seed}:{ratio}")
    rows: list[dict[str, str]] = []
    for share, write in ((ratio, junk_text), (1 - ratio, control_text)):
        tokens = 0
        while tokens < share * budget:
            text = write(rng)
            rows.append({"text": text})
            tokens += count_tokens(text)
    rng.shuffle(rows)
    return rows
