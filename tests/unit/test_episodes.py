"""Episodes assembled from a stream of events: as each ends, holding only those in flight."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from eventroll.episodes import assemble, episodes_as_they_end
from eventroll.events import EpisodeEnd, EpisodeLost, EpisodeStart, StepBatch

FRAME = (256, 256)  # float64: 512 KiB an observation


def start(episode: int, worker: int = 0) -> EpisodeStart:
    return EpisodeStart(episode=episode, env_seed=episode, agent_seed=episode,
                        observation=np.zeros(FRAME), info={}, worker=worker)


def batch(episode: int, t0: int, n: int = 1, worker: int = 0) -> StepBatch:
    return StepBatch(episode=episode, t0=t0, n=n, action=np.zeros(n, np.int64),
                     observation=np.full((n, *FRAME), episode, np.float64), reward=np.ones(n),
                     terminated=np.zeros(n, bool), truncated=np.zeros(n, bool), worker=worker)


def end(episode: int, length: int = 2, worker: int = 0) -> EpisodeEnd:
    return EpisodeEnd(episode=episode, length=length, return_=float(length), terminated=True,
                      truncated=False, aborted=False, wall_time=0.0, worker=worker)


def two_workers(n_episodes: int):
    """Two workers' episodes of two one-step batches, interleaved; made as they are taken."""
    for first in range(0, n_episodes, 2):
        pair = (first, first + 1)
        for episode in pair:
            yield start(episode, worker=episode % 2)
        for t in (0, 1):
            for episode in pair:
                yield batch(episode, t, worker=episode % 2)
        for episode in pair:
            yield end(episode, worker=episode % 2)


def test_each_episode_comes_as_it_ends_and_only_those_in_flight_are_held():
    """40 episodes of three 512 KiB observations (60 MiB in all) go through within 8 MiB;
    each whole, in the order they ended."""
    tracemalloc.start()
    try:
        seen = [(e.index, e.length, float(e.column("observation")[-1, 0, 0]))
                for e in episodes_as_they_end(two_workers(40))]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == [(i, 2, float(i)) for i in range(40)]
    assert peak < 8 << 20, peak


def test_unfinished_episodes_come_last_in_index_order():
    events = [start(5), start(3), start(4), batch(5, 0), end(4, length=0), batch(3, 0)]
    assert [(e.index, e.end is None, e.length) for e in episodes_as_they_end(events)] == [
        (4, False, 0), (3, True, 1), (5, True, 1)]


def test_a_lost_episode_may_start_again_and_no_other():
    """episode.lost voids what arrived of an episode (it is played again); a second start of
    an episode that was not lost is an error, and so is a batch outside its episode."""
    replayed = [start(0), batch(0, 0), EpisodeLost(episode=0, reason="retry"), start(0),
                batch(0, 0), batch(0, 1), end(0)]
    [episode] = episodes_as_they_end(replayed)
    assert (episode.index, episode.length, len(episode.batches)) == (0, 2, 2)
    with pytest.raises(ValueError, match="episode 0 started twice"):
        assemble([start(0), end(0, length=0), start(0)])
    with pytest.raises(ValueError, match="step.batch of episode 1 outside"):
        assemble([start(0), batch(1, 0)])
    with pytest.raises(ValueError, match="steps 0..0 missing"):
        assemble([start(0), batch(0, 1)])


def test_an_index_set_holds_any_int_in_little_memory():
    """Episode indexes one bit each; a damaged stream's huge or negative index is held apart,
    without bits up to it (2**40 would be 128 GiB of them)."""
    from eventroll.stream import IndexSet

    indexes = IndexSet()
    tracemalloc.start()
    try:
        for index in (0, 7, 8, 1000, 2**40, -3):
            indexes.add(index)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 64 << 10, held
    assert all(i in indexes for i in (0, 7, 8, 1000, 2**40, -3))
    assert not any(i in indexes for i in (1, 9, 999, 2**40 + 1, -1))
    indexes.discard(2**40)
    indexes.discard(7)
    assert 2**40 not in indexes and 7 not in indexes and 8 in indexes


@pytest.mark.parametrize("columns, joined", [
    # a Tuple whose first item is a Dict (it was flattened into one list of four items)
    ([[{"k": np.array([1, 2])}, np.array([[1], [2]])], [{"k": np.array([3])}, np.array([[3]])]],
     [{"k": np.array([1, 2, 3])}, np.array([[1], [2], [3]])]),
    # a Tuple whose first item is a Box, and one holding Text values
    ([[np.array([1, 2]), ["a", "b"]], [np.array([3]), ["c"]]],
     [np.array([1, 2, 3]), ["a", "b", "c"]]),
    # Text values alone
    ([["a", "b"], ["c"]], ["a", "b", "c"]),
])
def test_columns_of_nested_spaces_join_step_by_step(columns, joined):
    """The columns of an episode's batches join into one column of the same structure."""
    from eventroll.episodes import concat

    def same(a, b):
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list) and not all(isinstance(x, str) for x in a):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return np.array_equal(np.asarray(a), np.asarray(b))

    assert same(concat(columns), joined)


def test_index_sets_joined_and_compared_through_msgpack():
    """Two index sets of different sizes: disjoint or not, their union, and each read back
    from its plain form."""
    from eventroll import codec
    from eventroll.stream import IndexSet

    small, large, other = IndexSet(), IndexSet(), IndexSet()
    for index in (3, 64, -2):
        small.add(index)
    for index in (4, 5000, 2**40):
        large.add(index)
    other.add(5000)
    small, large = (IndexSet.from_portable(codec.decode(codec.encode(s.portable())))
                    for s in (small, large))
    assert small.isdisjoint(large) and large.isdisjoint(small)
    assert not large.isdisjoint(other) and not other.isdisjoint(large)
    small.update(large)
    assert all(i in small for i in (3, 64, -2, 4, 5000, 2**40))
    assert not any(i in small for i in (0, 5, 4999, -3))
    assert not small.isdisjoint(other)
