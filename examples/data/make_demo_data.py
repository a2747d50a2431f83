#!/usr/bin/env python3
"""Writes LlamaAlign's bundled demo data: a synthetic story corpus, an SFT set and a
preference set. Everything is generated here from small word lists (no third-party text).
Deterministic: `python3 examples/data/make_demo_data.py` rewrites the same files."""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(1234)

NAMES = ["Lily", "Tom", "Mia", "Ben", "Sara", "Max", "Anna", "Leo"]
ANIMALS = ["cat", "dog", "bird", "fish", "rabbit", "frog", "duck", "fox"]
PLACES = ["park", "garden", "forest", "river", "house", "beach", "farm", "hill"]
ACTIONS = ["played with", "looked at", "ran after", "sang to", "found", "helped", "hugged", "fed"]
FEELINGS = ["happy", "sleepy", "brave", "kind", "hungry", "curious", "glad", "calm"]
COLORS = {"sky": "blue", "grass": "green", "snow": "white", "sun": "yellow", "night": "black", "apple": "red",
          "orange": "orange", "sea": "blue", "cloud": "white", "leaf": "green"}
SOUNDS = {"cat": "meow", "dog": "woof", "duck": "quack", "cow": "moo", "frog": "ribbit", "sheep": "baa", "bird": "tweet"}


def story():
    n, a, p = rng.choice(NAMES), rng.choice(ANIMALS), rng.choice(PLACES)
    act, feel = rng.choice(ACTIONS), rng.choice(FEELINGS)
    return rng.choice([
        f"{n} went to the {p}. {n} {act} a {a}. The {a} was {feel}.",
        f"One day a {feel} {a} lived near the {p}. {n} {act} the {a} every day.",
        f"{n} and the {a} were friends. They went to the {p} and felt {feel}.",
        f"The {a} in the {p} was {feel}. {n} {act} it and smiled.",
    ])


def write_jsonl(name, rows):
    with open(os.path.join(HERE, name), "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def sft_rows(count):
    rows = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.35:
            thing = rng.choice(list(COLORS))
            rows.append({"src": f"What color is the {thing}?", "tgt": f"The {thing} is {COLORS[thing]}."})
        elif kind < 0.7:
            x, y = rng.randint(1, 9), rng.randint(1, 9)
            rows.append({"src": f"What is {x} plus {y}?", "tgt": f"{x} plus {y} is {x + y}."})
        elif kind < 0.85:
            animal = rng.choice(list(SOUNDS))
            rows.append({"src": f"What does the {animal} say?", "tgt": f"The {animal} says {SOUNDS[animal]}."})
        else:
            thing = rng.choice(list(COLORS))
            x, y = rng.randint(1, 9), rng.randint(1, 9)
            rows.append({"src": [f"What color is the {thing}?", f"And what is {x} plus {y}?"],
                         "tgt": [f"The {thing} is {COLORS[thing]}.", f"{x} plus {y} is {x + y}."]})
    return rows


def preference_rows(count):
    """Chosen answers state the right fact; rejected ones a wrong color or a wrong animal sound.
    A tiny model can learn this preference, and `quickstart` checks it by exact match."""
    rows = []
    for _ in range(count):
        if rng.random() < 0.5:
            thing = rng.choice(list(COLORS))
            wrong = rng.choice(sorted(c for c in set(COLORS.values()) if c != COLORS[thing]))
            rows.append({"prompt": f"What color is the {thing}?", "chosen": f"The {thing} is {COLORS[thing]}.",
                         "rejected": f"The {thing} is {wrong}."})
        else:
            animal = rng.choice(list(SOUNDS))
            wrong = rng.choice(sorted(s for s in set(SOUNDS.values()) if s != SOUNDS[animal]))
            rows.append({"prompt": f"What does the {animal} say?", "chosen": f"The {animal} says {SOUNDS[animal]}.",
                         "rejected": f"The {animal} says {wrong}."})
    return rows


if __name__ == "__main__":
    write_jsonl("pretrain.jsonl", [{"text": story()} for _ in range(500)])
    write_jsonl("sft_train.jsonl", sft_rows(400))
    write_jsonl("sft_dev.jsonl", sft_rows(60))
    write_jsonl("dpo_train.jsonl", preference_rows(300))
    write_jsonl("dpo_dev.jsonl", preference_rows(60))
