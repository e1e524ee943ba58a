"""Recording what your own code publishes: a RolloutGenerator recorded by every recorder."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from eventroll import RolloutGenerator, Statistics, open_trajectories, read_events
from eventroll.errors import ConfigError
from eventroll.policies import RandomPolicy
from eventroll.recording import Recording


def test_generator_recorded_by_every_recorder(tmp_path):
    """A generator publishing into a Recording yields an event log, an HDF5 file and
    stats.json that hold its ended episodes, equal to its own records."""
    env = gym.make("CartPole-v1")
    policy = RandomPolicy(env.action_space)
    policy.seed(3)
    env.reset(seed=1)
    with Recording(tmp_path / "gen", env.observation_space, env.action_space,
                   env="CartPole-v1") as recording:
        generator = RolloutGenerator(env, publisher=recording.publisher)
        records = [generator.rollout(policy, 200) for _ in range(3)]
    assert recording.report["errors"] == []
    durable = recording.report["durable"]
    assert durable["eventlog"]["errors"] == [] and durable["stats"]["errors"] == []
    actions = np.concatenate([r.actions for r in records])
    episodes = np.concatenate([r.episodes for r in records])
    ended = sorted({int(e) for e, done in zip(episodes, np.concatenate([r.dones for r in records]))
                    if done})
    running = [int(e) for e in np.unique(episodes) if e >= 0 and e not in ended]
    assert durable["trajectories"]["errors"] == ([] if not running else [
        f"episodes {running} never ended; they are not in {tmp_path / 'gen' / 'trajectories.h5'} "
        "(the event log holds their steps)"])
    with open_trajectories(tmp_path / "gen") as trajectories:
        assert trajectories.indices == ended
        for index in ended:
            assert np.array_equal(trajectories[index].actions, actions[episodes == index])
    stats = Statistics.load(tmp_path / "gen" / "stats.json")
    assert stats.get_stats_value("episode_count") == len(ended)
    kinds = {event.KIND for event in read_events(tmp_path / "gen" / "events.msgpack")}
    assert {"run.start", "worker.start", "episode.start", "step.batch", "episode.end",
            "worker.end", "run.end"} <= kinds


def test_recording_refuses_a_used_run_directory(tmp_path):
    """A second Recording into the same directory is refused: nothing is overwritten."""
    env = gym.make("CartPole-v1")
    with Recording(tmp_path / "r", env.observation_space, env.action_space):
        pass
    with pytest.raises(ConfigError, match="already holds a run"):
        Recording(tmp_path / "r", env.observation_space, env.action_space)
