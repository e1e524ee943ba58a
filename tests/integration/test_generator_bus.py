"""The rollout generator publishing on a real run's bus: the event log holds its episodes,
the stats recorder its statistics."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from eventroll import read_events
from eventroll.bus import Publisher
from eventroll.episodes import assemble
from eventroll.events import RunEnd, RunStart, WorkerEnd, WorkerStart
from eventroll.generator import RolloutGenerator, TrajectoryRecord
from eventroll.recorders.eventlog import EventLogRecorder
from eventroll.recorders.stats import StatsRecorder
from eventroll.runners.session import RecorderSpec, RunSession, Timeouts
from eventroll.spaces import describe_space
from tests.unit.test_generator import CounterEnv, RecordingPolicy, counter_vector

TIMEOUTS = Timeouts(start=30, stall=10, finish=10, reap=5)
ROLLOUTS = (4, 7, 5)  # steps per rollout call
SPECS = [{"event": "tick", "field": "value"}, {"event": "reset", "field": "value"}]


def join(records: list[TrajectoryRecord], name: str) -> np.ndarray:
    return np.concatenate([getattr(record, name) for record in records])


def generate_on_bus(tmp_path, env):
    """Run a session with the event-log and stats recorders; roll out as worker 0; return
    the records, the logged events, the recorded and the generator's stats, and the
    hub's report."""
    path, stats_path = str(tmp_path / "events.msgpack"), str(tmp_path / "stats.json")
    single = getattr(env, "single_observation_space", env.observation_space)
    single_action = getattr(env, "single_action_space", env.action_space)
    recorders = [RecorderSpec("eventlog", EventLogRecorder, {"path": path, "run_id": "g"}),
                 RecorderSpec("stats", StatsRecorder, {"path": stats_path, "specs": SPECS})]
    with RunSession(recorders, timeouts=TIMEOUTS) as session:
        session.start()
        session.emit(RunStart(run_id="g", runner="generator", n_episodes=0, n_workers=1,
                              env="counter", observation_space=describe_space(single),
                              action_space=describe_space(single_action)))
        session.go()
        publisher = Publisher(session.endpoints.ingress, 0, stall_timeout=TIMEOUTS.stall,
                              ack_timeout=TIMEOUTS.finish)
        try:
            publisher.add(WorkerStart(pid=os.getpid()))
            generator = RolloutGenerator(env, record_next_observations=True,
                                         publisher=publisher, custom_stats=SPECS)
            policy = RecordingPolicy(env.action_space)
            records = [generator.rollout(policy, n) for n in ROLLOUTS]
            ended = int(join(records, "dones").sum())
            publisher.finish(WorkerEnd(pid=os.getpid(), episodes=ended,
                                       last_wseq=publisher.next_wseq))
        finally:
            publisher.close()
        report = session.finish(RunEnd(run_id="g", status="completed", episodes=ended,
                                       aborted=0, steps=int(join(records, "valid").sum()),
                                       wall_time=0.0))
    with open(stats_path, encoding="utf-8") as file:
        recorded = json.load(file)
    return records, list(read_events(path)), (recorded, generator.epoch_stats()), report


ENVS = {
    "single": lambda: CounterEnv(3),
    "next_step": lambda: counter_vector([2, 3, 5], AutoresetMode.NEXT_STEP),
    "same_step": lambda: counter_vector([2, 3, 5], AutoresetMode.SAME_STEP),
    "disabled": lambda: counter_vector([2, 3, 5], AutoresetMode.DISABLED),
}


@pytest.mark.parametrize("kind", sorted(ENVS))
def test_logged_episodes_equal_the_records(tmp_path, kind):
    """Every episode the generator ended is in the log, start to end, equal to its
    records' entries; episodes still running are started but not ended."""
    records, events, _, report = generate_on_bus(tmp_path, ENVS[kind]())
    assert report["errors"] == []
    episodes = assemble(events)
    index = join(records, "episodes")
    observations, next_observations = (join(records, "observations"),
                                       join(records, "next_observations"))
    actions, rewards = join(records, "actions"), join(records, "rewards")
    terminated, truncated = join(records, "terminated"), join(records, "truncated")
    starts = [e for e in events if e.KIND == "episode.start"]
    assert [e.episode for e in starts] == list(range(len(starts)))  # indices in start order
    assert all(e.worker == 0 and e.env_seed is None and e.agent_seed is None for e in starts)
    ended = {k for k, episode in episodes.items() if episode.end is not None}
    assert ended == set(index[join(records, "dones")].tolist())
    assert set(episodes) >= set(index[index >= 0].tolist())
    assert len(ended) >= 4 and len(episodes) > len(ended)  # some still run: never ended
    for k in ended:
        episode, mine = episodes[k], index == k
        assert episode.end.length == mine.sum() and not episode.end.aborted
        assert episode.end.terminated and not episode.end.truncated
        assert episode.end.return_ == pytest.approx(rewards[mine].sum())
        np.testing.assert_array_equal(episode.reset_observation, observations[mine][0])
        np.testing.assert_array_equal(episode.column("action"), actions[mine])
        np.testing.assert_array_equal(episode.column("observation"), next_observations[mine])
        np.testing.assert_array_equal(episode.column("reward"), rewards[mine])
        np.testing.assert_array_equal(episode.column("terminated"), terminated[mine])
        np.testing.assert_array_equal(episode.column("truncated"), truncated[mine])
        assert [info["action"] for info in episode.column("info")] == actions[mine].tolist()
    for start in starts:  # the env's reset info travels with episode.start
        np.testing.assert_array_equal(start.observation, [0, start.info["episode"]])


@pytest.mark.parametrize("kind", ["single", "same_step"])
def test_recorded_stats_equal_the_generators(tmp_path, kind):
    """The stats recorder, fed from the bus, computes the generator's own statistics,
    custom ones included (taken from a single env only)."""
    _, events, (recorded, mine), report = generate_on_bus(tmp_path, ENVS[kind]())
    assert report["errors"] == []
    for key in ("episode_count", "step_count", "aborted_episode_count", "episode_return",
                "episode_length", "custom", "problems"):
        assert recorded[key] == mine[key], key
    assert mine["episode_count"] >= 4
    ticks = [e for e in events if e.KIND == "custom" and e.name == "tick"]
    if kind == "single":
        assert mine["custom"]["tick.value"]["epoch"] == 6.0  # 1 + 2 + 3 per episode
        assert len(ticks) == sum(ROLLOUTS)
    else:
        assert mine["custom"]["tick.value"]["episodes"] == {} and ticks == []
