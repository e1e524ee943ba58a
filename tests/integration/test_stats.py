"""Statistics of real runs: custom events from env and policy code, recorded live by the stats
recorder process, equal to the offline replay of the event log and to hand-computed numbers."""

from __future__ import annotations

import json
import os
import statistics
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from eventroll import ParallelRunner, SequentialRunner, read_events
from eventroll.custom import record_event
from eventroll.episodes import assemble
from eventroll.recorders.eventlog import EventLogReader
from eventroll.recorders.stats import StatsRecorder
from eventroll.runners.session import RecorderSpec
from eventroll.stats import Statistics, replay_stats
from eventroll.testing import FailingEnv

SEEDS = [3, 4, 5, 6, 7, 8]  # env seed s: an episode of 2 + s % 3 steps


class StatsEnv(gym.Env):
    """Episodes of ``2 + seed % 3`` steps with reward ``t + 1``, recording custom events:
    at reset ``reset(value=seed)``; at step t two ``tick`` events (values t and seed) and
    ``part(kind="a" if t is even else "b", value=t * seed)``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = spaces.Box(0, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._t = self._seed = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t, self._seed = 0, seed or 0
        record_event("reset", value=self._seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: Any):
        t, seed = self._t, self._seed
        record_event("tick", value=t)
        record_event("tick", value=seed)
        # a numpy value: the stats recorder must decode the arrays of custom events
        record_event("part", kind="a" if t % 2 == 0 else "b", value=np.int64(t * seed))
        self._t += 1
        terminated = self._t >= 2 + seed % 3
        return np.full(1, self._t, dtype=np.float32), float(t + 1), terminated, False, {}


class CountingPolicy:
    """Always action 0; records ``policy(value=1)`` for each action."""

    def __init__(self, **_: Any) -> None:
        pass

    def seed(self, seed: int) -> None:
        pass

    def compute_action(self, observation: Any, *, deterministic: bool = False) -> int:
        record_event("policy", value=1)
        return 0


class TickingFailingEnv(FailingEnv):
    """FailingEnv that records ``tick(value=1)`` at every step, the failing one included."""

    def step(self, action: Any):
        record_event("tick", value=1)
        return super().step(action)


class UnrecordableEnv(FailingEnv):
    """FailingEnv that records a value no event can carry at step 1."""

    def step(self, action: Any):
        if self._t == 1:
            record_event("bad", value=object())
        return super().step(action)


def spread(values: list) -> float:
    """A custom reducer by import path: max - min."""
    return max(values) - min(values)


SPECS = [
    {"event": "tick", "field": "value"},
    {"event": "tick", "field": "value", "name": "tick.shape", "step": "max", "episode": "median",
     "epoch": "std"},
    {"event": "tick", "field": "value", "name": "tick.count", "step": "len", "episode": "min",
     "epoch": "max"},
    {"event": "tick", "field": "value", "name": "tick.hist", "step": "min", "episode": "len",
     "epoch": "histogram"},
    {"event": "tick", "field": "value", "name": "tick.spread",
     "step": "tests.integration.test_stats:spread", "episode": "sum", "epoch": "min"},
    {"event": "part", "field": "value", "group_by": "kind", "step": "mean", "episode": "max",
     "epoch": "sum", "keep_steps": True},
    {"event": "reset", "field": "value", "episode": "max", "epoch": "sum"},
    {"event": "policy", "field": "value", "episode": "len", "epoch": "sum"},
]


class WithStats:
    """A runner that also starts the stats recorder, the way runners start recorders."""

    def __init__(self, specs: list, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stats_specs = specs

    def _recorders(self, plan) -> list[RecorderSpec]:
        others = [spec for spec in super()._recorders(plan) if spec.name != "stats"]
        return others + [RecorderSpec("stats", StatsRecorder, {
            "path": os.path.join(plan.run_dir, "stats.json"), "specs": self.stats_specs})]


class ParallelStatsRunner(WithStats, ParallelRunner):
    pass


class SequentialStatsRunner(WithStats, SequentialRunner):
    pass


def run_stats(runner, env, run_dir) -> tuple[Any, dict]:
    result = runner.run_with(env, agent=CountingPolicy, run_dir=str(run_dir))
    with open(os.path.join(result.run_dir, "stats.json"), encoding="utf-8") as file:
        return result, json.load(file)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    """A 2-worker run of StatsEnv: its result and stats.json."""
    runner = ParallelStatsRunner(SPECS, n_episodes=len(SEEDS), n_processes=2, console=None,
                                 explicit_env_seeds=SEEDS, agent_base_seed=0,
                                 record_trajectory=False)
    return run_stats(runner, StatsEnv, tmp_path_factory.mktemp("stats") / "parallel")


def expected() -> dict[str, tuple[dict, Any]]:
    """Per stat: the episode values by index and the epoch value, computed in plain Python."""
    episodes: dict[str, dict] = {}
    for index, seed in enumerate(SEEDS):
        ts = range(2 + seed % 3)
        by_kind = {kind: max(t * seed for t in ts if (t % 2 == 0) == (kind == "a"))
                   for kind in ("a", "b")}
        values = {"tick.value": sum(t + seed for t in ts),
                  "tick.shape": statistics.median(max(t, seed) for t in ts),
                  "tick.count": 2, "tick.hist": len(ts),
                  "tick.spread": sum(abs(t - seed) for t in ts),
                  "part.value": by_kind, "reset.value": seed, "policy.value": len(ts)}
        for name, value in values.items():
            episodes.setdefault(name, {})[str(index)] = value
    column = {name: list(values.values()) for name, values in episodes.items()}
    epochs = {"tick.value": statistics.mean(column["tick.value"]),
              "tick.shape": statistics.pstdev(column["tick.shape"]),
              "tick.count": 2, "tick.hist": None,  # checked on its own
              "tick.spread": min(column["tick.spread"]),
              "part.value": {kind: sum(v[kind] for v in column["part.value"]) for kind in "ab"},
              "reset.value": sum(SEEDS), "policy.value": sum(column["policy.value"])}
    return {name: (episodes[name], epochs[name]) for name in episodes}


class TestLiveAndOffline:
    def test_live_stats_equal_the_replay_of_the_event_log(self, parallel):
        """stats.json written live equals replay_stats over the event log, value for value."""
        result, live = parallel
        assert result.ok, result.errors
        assert live == replay_stats(result.event_log, SPECS)
        assert live["problems"] == {}

    @pytest.mark.parametrize("source", ["live", "offline"])
    @pytest.mark.parametrize("name", list(expected()))
    def test_each_reducer_at_each_level(self, parallel, source, name):
        """Every stat's episode and epoch values are the hand-computed ones, live and offline."""
        result, live = parallel
        stats = live if source == "live" else replay_stats(result.event_log, SPECS)
        episodes, epoch = expected()[name]
        stat = stats["custom"][name]
        assert stat["episodes"] == episodes  # sums, medians and maxima of integers: exact
        if name == "tick.hist":  # episode lengths 2, 3, 4 twice each
            assert stat["epoch"]["counts"] == [2, 0, 0, 0, 0, 2, 0, 0, 0, 2]
            assert stat["epoch"]["edges"][0] == 2.0 and stat["epoch"]["edges"][-1] == 4.0
        else:
            assert stat["epoch"] == pytest.approx(epoch)

    def test_step_values_are_kept_when_asked(self, parallel):
        """keep_steps holds each step's value: part(kind, t * seed) at t, split a/b."""
        _, live = parallel
        for index, seed in enumerate(SEEDS):
            assert live["custom"]["part.value"]["steps"][str(index)] == [
                [t, {"a" if t % 2 == 0 else "b": float(t * seed)}] for t in range(2 + seed % 3)]
        assert "steps" not in live["custom"]["tick.value"]

    def test_builtins_agree_with_the_event_log(self, parallel):
        """episode_return is over the rewards in the log; counts match the log's episodes."""
        result, live = parallel
        episodes = assemble(read_events(result.event_log))
        returns = [float(ep.column("reward").sum()) for ep in episodes.values()]
        lengths = [ep.length for ep in episodes.values()]
        assert (live["episode_count"], live["aborted_episode_count"]) == (6, 0)
        assert live["step_count"] == sum(lengths) == result.steps == 18
        assert live["episode_return"] == pytest.approx({
            "count": 6, "mean": np.mean(returns), "std": np.std(returns), "min": 3.0, "max": 10.0,
            "median": np.median(returns)})
        assert live["episode_length"]["mean"] == 3.0
        assert live["steps_per_second"] == pytest.approx(18 / live["wall_time"])

    def test_custom_records_follow_their_schema(self, parallel):
        """Every custom record in the log carries episode and t, and validates against
        schemas/custom.schema.json; reset events have t null."""
        from tests.integration.test_schemas import errors_of

        result, _ = parallel
        records = [r for r in EventLogReader(result.event_log).records() if r["kind"] == "custom"]
        assert len(records) == 6 + 18 * 4  # reset, then 2 tick, part and policy per step
        assert [error for record in records for error in errors_of("custom", record)] == []
        assert {r["t"] is None for r in records if r["name"] == "reset"} == {True}

    def test_query_the_written_file(self, parallel):
        """Statistics reads stats.json: built-ins, an epoch group, one episode's value."""
        result, _ = parallel
        stats = Statistics.load(os.path.join(result.run_dir, "stats.json"))
        assert stats.get_stats_value("episode_return", "epoch", "max") == 10.0
        assert stats.get_stats_value("part.value", "epoch", group="b") == 3 + 4 + 15 + 6 + 7 + 24
        assert stats.get_stats_value("reset.value", "episode", episode=2) == 5


def test_sequential_run_gives_the_same_stats(parallel, tmp_path):
    """The sequential runner records the same statistics as 2 workers (timings aside)."""
    runner = SequentialStatsRunner(SPECS, n_episodes=len(SEEDS), console=None,
                                   explicit_env_seeds=SEEDS, agent_base_seed=0,
                                   record_trajectory=False)
    _, sequential = run_stats(runner, StatsEnv, tmp_path / "run")
    timings = ("run_id", "wall_time", "steps_per_second")
    assert {k: v for k, v in sequential.items() if k not in timings} == \
        {k: v for k, v in parallel[1].items() if k not in timings}


def test_aborted_episodes_are_counted_apart(tmp_path):
    """Episodes whose env raises count as aborted, with their steps, and stay out of the
    returns and of every custom epoch value."""
    env = {"name": "tests.integration.test_stats:TickingFailingEnv", "length": 5, "fail_step": 2,
           "fail_every": 3}
    runner = ParallelStatsRunner([{"event": "tick", "field": "value"}], n_episodes=6,
                                 n_processes=2, console=None, explicit_env_seeds=[1, 2, 3, 4, 5, 6],
                                 agent_base_seed=0, record_trajectory=False)
    result, stats = run_stats(runner, env, tmp_path / "run")
    assert (result.episodes, result.aborted) == (4, 2)
    assert (stats["episode_count"], stats["aborted_episode_count"]) == (4, 2)
    assert stats["step_count"] == 4 * 5 + 2 * 2
    assert stats["episode_return"]["count"] == 4 and stats["episode_return"]["mean"] == 5.0
    assert stats["custom"]["tick.value"]["episodes"] == {"0": 5, "1": 5, "3": 5, "4": 5}
    assert stats["custom"]["tick.value"]["epoch"] == 5.0
    assert stats == replay_stats(result.event_log, [{"event": "tick", "field": "value"}])


def test_an_unrecordable_value_aborts_its_episode_and_names_the_field(tmp_path):
    """A custom value the codec cannot carry aborts that episode, naming event and field."""
    runner = SequentialStatsRunner([], n_episodes=1, console=None, env_base_seed=1,
                                   agent_base_seed=1, record_trajectory=False)
    result, stats = run_stats(runner, UnrecordableEnv, tmp_path / "run")
    assert (result.aborted, stats["aborted_episode_count"], stats["step_count"]) == (1, 1, 1)
    error, = [e for e in read_events(result.event_log) if e.KIND == "worker.error"]
    assert "episode 0, step 1: CodecError: custom event 'bad', field 'value': cannot encode a " \
           "value of type object" in error.error
