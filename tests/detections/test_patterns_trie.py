"""The prefilter's path tries: ``not_one_of`` (read forward from the token's start) and
``not_ending_in`` (read back from the literal after the token) accept every token but the words."""

from __future__ import annotations

import random
import re

import pytest

from exhunt.detections.patterns import not_ending_in, not_one_of

WORDS = ["/ews/exchange", "/owa/plt1", "/owa/auth/logon", "/owa/auth/log"]
ALPHABET = "abcdeghklnoptwxEWSL1/._-"


def _tokens(seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(3000):
        chars = list(rng.choice([*WORDS, "/", ""]) + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 2))))
        if chars and rng.random() < 0.5:
            del chars[rng.randrange(len(chars))]
        token = "".join(chars)
        out.append(token.upper() if rng.random() < 0.2 else token)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_not_ending_in_accepts_every_token_but_the_words(seed: int) -> None:
    pattern = re.compile(not_ending_in(WORDS, ' ,"\r\n') + r'\.aspx[ ,"]', re.IGNORECASE)
    for token in _tokens(seed):
        for line in (f"2021 POST {token}.aspx 443", f'x,"{token}.aspx",POST', f"x,{token}.aspx,POST"):
            if token.lower() in WORDS:
                assert not pattern.search(line), line
            elif token:
                assert pattern.search(line), line


def test_not_one_of_accepts_every_token_but_the_words() -> None:
    pattern = re.compile(r"[ ,]" + not_one_of(WORDS, end=' ?\r\n,"') + r"\.aspx[ ,]", re.IGNORECASE)
    for token in _tokens(7):
        line = f"2021 POST {token}.aspx 443"
        assert bool(pattern.search(line)) == (token.lower() not in WORDS), line
