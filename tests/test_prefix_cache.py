"""PrefixCache: the longest cached prefix, found block by block, within a memory budget."""

from __future__ import annotations

import torch

from sc_core.prefix_cache import BLOCK, Cached, PrefixCache


def cached(ids: list[int], layers: int = 2) -> Cached:
    """States whose values are the token ids, so a test can see which positions it got."""
    column = torch.tensor(ids, dtype=torch.float32).view(1, -1, 1)
    return Cached(list(ids), [(column.clone(), column.clone()) for _ in range(layers)])


def stored(*entries: Cached, budget: int = 2**30, version: int = 0) -> PrefixCache:
    cache = PrefixCache(budget)
    cache.begin(version)
    for entry in entries:
        cache.store(entry)
    cache.end()
    cache.begin(version)
    return cache


def test_a_prompt_extending_a_cached_sequence_finds_all_of_it():
    sequence = list(range(3 * BLOCK + 10))
    cache = stored(cached(sequence))
    length, entry = cache.lookup(sequence + [7, 8, 9])
    assert length == len(sequence) and entry.ids == sequence


def test_the_match_is_extended_past_the_last_whole_block_token_by_token():
    sequence = list(range(2 * BLOCK + 20))
    cache = stored(cached(sequence))
    prompt = sequence[: 2 * BLOCK + 5] + [-1, -2]
    assert cache.lookup(prompt)[0] == 2 * BLOCK + 5


def test_a_prompt_inside_a_cached_sequence_leaves_one_token_to_compute():
    sequence = list(range(3 * BLOCK))
    cache = stored(cached(sequence))
    assert cache.lookup(sequence[: 2 * BLOCK + 1])[0] == 2 * BLOCK
    assert cache.lookup(sequence)[0] == len(sequence) - 1


def test_the_longest_of_several_cached_prefixes_wins():
    shared = list(range(BLOCK))
    short, long = shared + [1000] * BLOCK, shared + [2000] * (2 * BLOCK)
    cache = stored(cached(short), cached(long))
    length, entry = cache.lookup(long + [5])
    assert length == len(long) and entry.ids == long
    length, entry = cache.lookup(short + [5])
    assert length == len(short) and entry.ids == short


def test_less_than_a_block_in_common_is_no_match():
    cache = stored(cached(list(range(2 * BLOCK))))
    assert cache.lookup(list(range(BLOCK - 1)) + [-5] * BLOCK) == (0, None)
    assert cache.lookup([9] * 3 * BLOCK) == (0, None)


def test_only_the_last_call_is_kept_and_new_weights_drop_it():
    first, second = list(range(2 * BLOCK)), list(range(5, 2 * BLOCK + 5))
    cache = stored(cached(first))
    cache.store(cached(second))
    cache.end()
    cache.begin(0)
    assert cache.lookup(first + [1]) == (0, None)
    assert cache.lookup(second + [1])[0] == len(second)
    cache.begin(1)  # the weights changed: nothing cached is valid
    assert cache.lookup(second + [1]) == (0, None)


def test_entries_beyond_the_budget_are_not_kept():
    small, big = cached(list(range(BLOCK))), cached(list(range(1, 4 * BLOCK + 1)))
    cache = stored(small, big, budget=small.nbytes + 1)
    assert cache.lookup(small.ids + [1])[0] == BLOCK
    assert cache.lookup(big.ids + [1]) == (0, None)


def test_clear_forgets_everything():
    sequence = list(range(2 * BLOCK))
    cache = stored(cached(sequence))
    cache.clear()
    assert cache.lookup(sequence + [1]) == (0, None)
