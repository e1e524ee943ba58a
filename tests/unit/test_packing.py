"""Whole episodes packed into one record: a source's stream, unpacked, is the stream it
would have sent unpacked; malformed packed records are refused."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from eventroll import codec, packing
from eventroll.bus import Publisher
from eventroll.custom import record_event
from eventroll.errors import EventError
from eventroll.events import from_record
from eventroll.policies import RandomPolicy
from eventroll.runners.loop import BusSink, run_episode
from eventroll.stats import StatsAggregator, ValueCounts
from eventroll.trajectories.flat import FlatWriter

UNSTAMPED = ("time", "wall_time")  # what differs between two plays of the same episodes


class CapturedPublisher(Publisher):
    """A :class:`Publisher` without a socket: each message's body is kept, with the number
    of events and steps its header would announce."""

    def __init__(self, pack: bool) -> None:  # Publisher's own would connect a socket
        self.worker, self._next_wseq = 3, 0
        self._pack = packing.EpisodePack() if pack else None
        self.messages: list[tuple[bytes, int, int]] = []
        self._new_message()

    def flush(self, *, end: bool = False, ack: bool = False) -> None:
        self._release()
        if self._records:
            self.messages.append((b"".join(self._records), self._next_wseq - self._first_wseq,
                                  self._steps))
        self._new_message()

    def records(self, arrays: Any = True) -> list[dict]:
        """Every record sent, decoded, the events' counts checked against the headers'."""
        return [record for body, count, _ in self.messages for record, _ in
                codec.split_records(body, count, arrays=arrays, counted=packing.event_count)]


class MixedEnv(gym.Env):
    """Counter episodes whose seed decides what is unusual in them: a step info (seed % 6
    == 1), a custom event (2), a reset info (3), a failure at step 2 (4), 40 steps (5);
    others last 3 + seed % 4 steps."""

    observation_space = spaces.Box(0, np.inf, shape=(2,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t, self._seed = 0, seed or 0
        return self._observation(), {"note": "reset"} if self._seed % 6 == 3 else {}

    def step(self, action: Any):
        self._t += 1
        kind = self._seed % 6
        if kind == 4 and self._t == 2:
            raise RuntimeError("planned failure")
        if kind == 2:
            record_event("tick", value=self._t)
        length = 40 if kind == 5 else 3 + self._seed % 4
        info = {"t": self._t} if kind == 1 else {}
        return self._observation(), 1.0, self._t >= length, False, info

    def _observation(self) -> np.ndarray:
        return np.array([self._t, self._seed], dtype=np.float32)


def play(env: gym.Env, pack: bool, seeds: range, batch_steps: int = 64) -> CapturedPublisher:
    publisher = CapturedPublisher(pack)
    sink = BusSink(publisher, pid=1, batch_steps=batch_steps, flush_interval=60.0)
    policy = RandomPolicy(env.action_space)
    for index in seeds:
        run_episode(env, policy, index, env_seed=index, agent_seed=index, sink=sink)
    publisher.flush()
    return publisher


def comparable(record: dict) -> dict:
    """A decoded record without what two plays stamp differently, arrays as lists."""
    return {key: value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in record.items() if key not in UNSTAMPED}


def test_cartpole_episodes_travel_packed_and_unpack_to_the_same_events():
    """CartPole's whole episodes go as a few packed records a message; unpacked, the stream
    is the one a publisher that does not pack sends, event for event."""
    packed, plain = (play(gym.make("CartPole-v1"), pack, range(60)) for pack in (True, False))
    records = packed.records()
    assert [record["kind"] for record in records].count("episodes") >= 1
    assert len(records) < len(plain.records()) / 10
    assert [(count, steps) for _, count, steps in packed.messages] == \
        [(count, steps) for _, count, steps in plain.messages]
    unpacked = packing.expanded(records)
    assert [comparable(r) for r in unpacked] == [comparable(r) for r in plain.records()]
    assert [r["wseq"] for r in unpacked] == list(range(len(unpacked)))


@pytest.mark.parametrize("arrays", [True, False, codec.RAW])
def test_unusual_episodes_go_one_event_a_record_in_order(arrays):
    """Episodes with infos, custom events, failures or more steps than a batch are sent
    event by event, between packed ones, in the order the loop made them; unpacked, with
    arrays decoded, left out or undecoded, the stream is the unpacked publisher's."""
    packed, plain = (play(MixedEnv(), pack, range(36), 16) for pack in (True, False))
    records = packed.records(arrays)
    kinds = [record["kind"] for record in records]
    assert {"episodes", "custom", "worker.error"} <= set(kinds)
    unpacked = packing.expanded(records, arrays)
    expected = plain.records(arrays)
    if arrays == codec.RAW:  # undecoded arrays compare by their payloads
        unpacked, expected = ([{k: v.payload if type(v) is codec.RawArray else v
                                for k, v in r.items()} for r in rs] for rs in (unpacked, expected))
    assert [comparable(r) for r in unpacked] == [comparable(r) for r in expected]
    episodes = [r["episode"] for r in records if r["kind"] == "episodes"]
    assert all(index % 6 == 0 for group in episodes for index in group)


def test_pack_takes_no_event_that_would_change_the_episode():
    """The pack holds an episode only while it stays plain (a 40-step one is, in a batch of
    64); what it refuses is sent after what it held, and nothing is lost."""
    publisher = play(MixedEnv(), True, range(6))
    counts = [packing.event_count(record) for record in publisher.records()]
    assert sum(counts) == publisher.next_wseq
    packed = [r for r in publisher.records() if r["kind"] == "episodes"]
    assert [r["episode"] for r in packed] == [[0], [5]]


def packed_record(**changes: Any) -> dict:
    """A packed record of CartPole episodes as a reader decodes it, with ``changes``."""
    record = next(r for r in play(gym.make("CartPole-v1"), True, range(8)).records()
                  if r["kind"] == "episodes")
    record.update(changes)
    return record


@pytest.mark.parametrize("changes, problem", [
    (dict(n=0), "expected an int >= 1"),
    (dict(length=[1, 2]), "'length' does not hold"),
    (dict(env_seed=["x"] * 8), "'env_seed' does not hold 8 values"),
    (dict(times=[0.0]), "'times' does not hold 24 floats"),
    (dict(return_=None), "'return'"),
    (dict(reward=np.zeros(3)), "'reward' does not hold a row for each"),
    (dict(reset_observation=np.zeros((2, 4), np.float32)), "'reset_observation'"),
    (dict(wall_time=[1] * 8), "'wall_time' does not hold 8 values of type float"),
])
def test_malformed_packed_records_are_refused(changes, problem):
    record = packed_record()
    if "return_" in changes:
        record["return"] = changes.pop("return_")
    record.update(changes)
    with pytest.raises(EventError, match=problem):
        packing.unpacked(record)


def test_event_count():
    record = packed_record()
    assert packing.event_count(record) == 3 * record["n"] == 24
    assert packing.event_count({"kind": "episodes", "n": "8"}) == 1  # refused when read
    assert packing.event_count({"kind": "step.batch"}) == 1



def test_statistics_of_packed_episodes_equal_those_of_their_events():
    """The statistics take packed episodes at once, as they take the events those stand
    for; an episode that had ended already is a problem, as its episode.end alone is."""
    record = packed_record()
    packed, one_by_one = StatsAggregator(), StatsAggregator()
    packed.handle(packing.checked(record))
    for event in packing.unpacked(record):
        one_by_one.handle(from_record(event))
    assert packed.result() == one_by_one.result()
    assert packed.result()["episode_count"] == record["n"]
    packed.handle(packing.checked(record))
    result = packed.result()
    assert result["episode_count"] == record["n"]
    assert sum(result["problems"].values()) == record["n"]


def test_an_episode_packed_twice_is_a_problem_of_the_statistics():
    """A packed record that holds one episode twice: the second is a problem, as a second
    episode.end is."""
    record = packed_record()
    record["episode"] = [record["episode"][0]] * record["n"]
    aggregator = StatsAggregator()
    aggregator.handle(packing.checked(record))
    result = aggregator.result()
    assert result["episode_count"] == 1
    assert sum(result["problems"].values()) == record["n"] - 1


@pytest.mark.parametrize("spilled", [False, True])
def test_value_counts_add_all_adds_each(spilled):
    values = [1.0, -0.0, 0.0, 2.5, 1.0, float("inf")]
    together, each = ValueCounts(np.float64), ValueCounts(np.float64)
    if spilled:
        together._spill(), each._spill()
    together.add_all(values)
    for value in values:
        each.add(value)
    assert np.array_equal(together.sorted(), each.sorted()) and len(together) == len(values)


@pytest.mark.parametrize("seeds, problem", [
    ([None] * 8, None),
    ([-5] + [1] * 7, "its env seed -5 is negative"),
    ([1 << 64] + [1] * 7, "its env seed 18446744073709551616 does not fit the int64"),
])
def test_the_flat_file_takes_packed_episodes_whose_index_fits(tmp_path, seeds, problem):
    """Packed episodes whose seeds are none are taken; one whose seed the file cannot hold
    is named, and none of the record's episodes is taken."""
    env = gym.make("CartPole-v1")
    writer = FlatWriter(str(tmp_path / "t.h5"), env.observation_space, env.action_space)
    record = packed_record(env_seed=seeds)
    if problem is None:
        writer.add_packed(packing.checked(record))
        assert writer.close()["episodes"] == 8
        return
    with pytest.raises(EventError, match=f"episode {record['episode'][0]}: {problem}"):
        writer.add_packed(packing.checked(record))
    assert writer.close()["episodes"] == 0


@pytest.mark.parametrize("packed", [True, False])
def test_a_recorder_refuses_a_malformed_packed_record(packed):
    """A packed record without episodes is refused and counted, whether the recorder takes
    packed records whole or as their events; the record after it is taken."""
    from eventroll.bus import Delivery
    from eventroll.recorders.base import Reading, Rejections, _checked
    from eventroll.stream import SequenceChecker

    record = {key: value for key, value in packed_record(n=0, worker=0, wseq=0).items()
              if key != "seq"}
    body = codec.encode(record) + codec.encode(
        {"kind": "custom", "worker": 0, "wseq": 1, "time": 0.0, "name": "ok"})
    rejected = Rejections()
    taken = _checked(Delivery(0, 2, body), Reading(frozenset({"custom"}), True, packed),
                     SequenceChecker(), rejected)
    assert [(event.seq, event.KIND) for event in taken] == [(1, "custom")]
    assert rejected.count == 1 and "n=0, expected an int >= 1" in rejected.first[0]
