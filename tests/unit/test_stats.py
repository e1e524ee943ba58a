"""Statistics and custom events, fed with hand-built events: reducers, levels, groups, queries."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from eventroll.custom import emitting, record_event
from eventroll.errors import ConfigError
from eventroll.events import Custom, EpisodeEnd, EpisodeStart, RunEnd, RunStart, StepBatch
from eventroll.runners.loop import NullSink, run_episode
from eventroll.stats import (StatsAggregator, StatSpec, Statistics, StatsQueryError,
                             ValueCounts, parse_specs, summarize, to_json)

# custom "x" values per episode and step: {episode: {t: [values of field "v"]}}
VALUES = {0: {0: [1, 3], 1: [2], 2: [6]}, 1: {0: [5], 1: [4, 4, 1]}, 2: {0: [0]}}


def spread(values: list) -> float:
    """A custom reducer, named by import path in the tests: max - min."""
    return max(values) - min(values)


def broken(values: list) -> float:
    raise ArithmeticError("no luck")


def episode(index: int, length: int = 1, return_: float = 0.0, aborted: bool = False):
    return [EpisodeStart(episode=index, env_seed=index, agent_seed=index, observation=0)], \
        EpisodeEnd(episode=index, length=length, return_=return_, terminated=not aborted,
                   truncated=False, aborted=aborted, wall_time=0.01)


def custom_events(values: dict = VALUES, name: str = "x") -> list:
    """Each episode: start, its custom events step by step, end."""
    stream = []
    for index, steps in values.items():
        starts, end = episode(index, length=len(steps))
        stream += starts
        stream += [Custom(name=name, episode=index, t=t, fields={"v": v})
                   for t, vs in steps.items() for v in vs]
        stream.append(end)
    return stream


def aggregate(specs, stream) -> dict:
    aggregator = StatsAggregator(specs)
    for event in stream:
        aggregator.handle(event)
    return aggregator.result()


def batch(index: int, t0: int, rewards: list[float]) -> StepBatch:
    n = len(rewards)
    return StepBatch(episode=index, t0=t0, n=n, action=np.zeros(n, dtype=np.int64),
                     observation=np.zeros((n, 2)), reward=np.asarray(rewards),
                     terminated=np.arange(n) == n - 1, truncated=np.zeros(n, dtype=bool))


def histogram(lo: float, hi: float, counts: list[int]) -> dict:
    return {"edges": [lo + (hi - lo) * i / 10 for i in range(11)], "counts": counts}


def assert_values(actual, expected) -> None:
    if isinstance(expected, dict):
        assert actual["counts"] == expected["counts"]
        assert actual["edges"] == pytest.approx(expected["edges"])
    else:
        assert actual == pytest.approx(expected) and type(actual) is type(expected)


# step level: episode 1, t=1 holds [4, 4, 1]
STEP = {"sum": 9, "mean": 3.0, "len": 3, "min": 1, "max": 4, "std": math.sqrt(2.0),
        "median": 4.0, "histogram": histogram(1, 4, [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
        "tests.unit.test_stats:spread": 3}
# episode level, steps summed: episode 0 has step values [4, 2, 6]
EPISODE = {"sum": 12, "mean": 4.0, "len": 3, "min": 2, "max": 6, "std": math.sqrt(8 / 3),
           "median": 4.0, "histogram": histogram(2, 6, [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]),
           "tests.unit.test_stats.spread": 4}
# epoch level, steps and episodes summed: episode values [12, 14, 0]
EPOCH = {"sum": 26, "mean": 26 / 3, "len": 3, "min": 0, "max": 14, "std": math.sqrt(344) / 3,
         "median": 12.0, "histogram": histogram(0, 14, [1, 0, 0, 0, 0, 0, 0, 0, 1, 1]),
         "tests.unit.test_stats:spread": 14}


class TestReducers:
    @pytest.mark.parametrize("reducer", STEP)
    def test_step_level(self, reducer):
        """Each step reducer reduces the values of one (episode, t) to the hand-computed value."""
        result = aggregate([{"event": "x", "field": "v", "step": reducer, "keep_steps": True}],
                           custom_events())
        t, value = result["custom"]["x.v"]["steps"]["1"][1]
        assert t == 1
        assert_values(value, STEP[reducer])

    @pytest.mark.parametrize("reducer", EPISODE)
    def test_episode_level(self, reducer):
        """Each episode reducer reduces one episode's step values to the hand-computed value."""
        result = aggregate([{"event": "x", "field": "v", "episode": reducer}], custom_events())
        assert_values(result["custom"]["x.v"]["episodes"]["0"], EPISODE[reducer])

    @pytest.mark.parametrize("reducer", EPOCH)
    def test_epoch_level(self, reducer):
        """Each epoch reducer reduces the episode values to the hand-computed value."""
        result = aggregate([{"event": "x", "field": "v", "epoch": reducer}], custom_events())
        assert_values(result["custom"]["x.v"]["epoch"], EPOCH[reducer])

    def test_default_reducers_sum_sum_mean(self):
        """By default steps and episodes are summed and the epoch is their mean."""
        result = aggregate([StatSpec("x", "v", keep_steps=True)], custom_events())
        stat = result["custom"]["x.v"]
        assert stat["reducers"] == {"step": "sum", "episode": "sum", "epoch": "mean"}
        assert stat["steps"] == {"0": [[0, 4], [1, 2], [2, 6]], "1": [[0, 5], [1, 9]],
                                 "2": [[0, 0]]}
        assert stat["episodes"] == {"0": 12, "1": 14, "2": 0}
        assert stat["epoch"] == pytest.approx(26 / 3)

    def test_vector_values_are_reduced_element_by_element(self):
        """numpy vectors are summed per element, and the result is plain JSON data."""
        stream = custom_events({0: {0: [np.array([1.0, 2.0]), np.array([3.0, 4.0])]}})
        result = aggregate([StatSpec("x", "v")], stream)
        assert result["custom"]["x.v"]["epoch"] == [4.0, 6.0]
        assert json.loads(to_json(result)) == result

    def test_reset_events_are_step_minus_one(self):
        """Events recorded during reset (t None) form their own step, t = -1, first."""
        starts, end = episode(0, length=1)
        stream = [*starts, Custom(name="x", episode=0, t=0, fields={"v": 2}),
                  Custom(name="x", episode=0, t=None, fields={"v": 7}), end]
        result = aggregate([StatSpec("x", "v", keep_steps=True)], stream)
        assert result["custom"]["x.v"]["steps"]["0"] == [[-1, 7], [0, 2]]
        assert result["custom"]["x.v"]["episodes"]["0"] == 9

    def test_failing_reducer_is_a_problem(self):
        """A reducer that raises leaves its value out and is reported, not raised."""
        spec = {"event": "x", "field": "v", "episode": "tests.unit.test_stats:broken"}
        result = aggregate([spec], custom_events())
        assert result["custom"]["x.v"]["episodes"] == {}
        assert result["custom"]["x.v"]["epoch"] is None
        (message, count), = result["problems"].items()
        assert count == 3 and "episode reducer 'tests.unit.test_stats:broken' failed" in message
        assert "ArithmeticError: no luck" in message


def part(index: int, t: int | None, kind, value) -> Custom:
    return Custom(name="part", episode=index, t=t, fields={"kind": kind, "value": value})


class TestGroupBy:
    def stream(self):
        starts0, end0 = episode(0, length=2)
        starts1, end1 = episode(1, length=1)
        return [*starts0, *starts1,
                part(0, 0, "a", 1), part(0, 0, "b", 10), part(1, 0, "a", 5), part(0, 0, "a", 2),
                part(0, 1, "b", 20), end1, end0]

    def test_each_group_is_reduced_separately_at_every_level(self):
        """Values split by the group_by field: per step, per episode and per epoch."""
        result = aggregate([{"event": "part", "field": "value", "group_by": "kind",
                             "step": "max", "episode": "sum", "epoch": "mean", "keep_steps": True}],
                           self.stream())
        stat = result["custom"]["part.value"]
        assert stat["steps"] == {"0": [[0, {"a": 2, "b": 10}], [1, {"b": 20}]],
                                 "1": [[0, {"a": 5}]]}
        assert stat["episodes"] == {"0": {"a": 2, "b": 30}, "1": {"a": 5}}
        assert stat["epoch"] == {"a": 3.5, "b": 30.0}

    def test_int_groups_become_text_and_bad_groups_are_problems(self):
        """An int group value is a group named by its text; a float one is reported."""
        starts, end = episode(0)
        stream = [*starts, part(0, 0, 3, 1.0), part(0, 0, np.int64(3), 2.0), part(0, 0, 0.5, 9.0),
                  Custom(name="part", episode=0, t=0, fields={"value": 4.0}), end]
        result = aggregate([StatSpec("part", "value", group_by="kind")], stream)
        assert result["custom"]["part.value"]["epoch"] == {"3": 3.0}
        (message, count), = result["problems"].items()
        assert count == 2 and "group_by field 'kind' is missing or not a str or int" in message


class TestBuiltins:
    def stream(self):
        """Episode 0: 3 steps, return 6; episode 1 aborted after 2 steps; episode 2: 1 step."""
        s0, e0 = episode(0, length=3, return_=6.0)
        s1, e1 = episode(1, length=2, return_=1.0, aborted=True)
        s2, e2 = episode(2, length=1, return_=0.5)
        return [RunStart(run_id="r1", runner="test", n_episodes=3, n_workers=2, env="e",
                         time=100.0),
                *s0, *s1, batch(1, 0, [0.5, 0.5]), batch(0, 0, [1.0, 2.0]), e1, batch(0, 2, [3.0]),
                *s2, batch(2, 0, [0.5]), e0, e2,
                RunEnd(run_id="r1", status="failed", episodes=2, aborted=1, steps=6,
                       wall_time=2.5, time=102.0)]

    def test_counts_returns_lengths_and_speed(self):
        """Aborted episodes count in step_count and aborted_episode_count, not in returns."""
        result = aggregate([], self.stream())
        assert (result["run_id"], result["episode_count"], result["step_count"],
                result["aborted_episode_count"]) == ("r1", 2, 6, 1)
        assert result["wall_time"] == 2.0 and result["steps_per_second"] == 3.0
        assert result["episode_return"] == {"count": 2, "mean": 3.25, "std": 2.75, "min": 0.5,
                                             "max": 6.0, "median": 3.25}
        assert result["episode_length"] == {"count": 2, "mean": 2.0, "std": 1.0, "min": 1, "max": 3,
                                             "median": 2.0}
        assert result["custom"] == {} and result["problems"] == {}

    def test_no_episodes_and_no_run_end(self):
        """Without episodes the summaries hold count 0 and nulls; without run.end no speed."""
        result = aggregate([], self.stream()[:1])
        assert result["episode_return"] == {"count": 0, "mean": None, "std": None, "min": None,
                                             "max": None, "median": None}
        assert result["wall_time"] is None and result["steps_per_second"] is None

    @pytest.mark.parametrize("start, end", [(math.nan, 102.0), (100.0, math.inf),
                                            (-1e308, 1e308)])
    def test_times_without_a_finite_wall_time(self, start, end):
        """A run.start or run.end time that gives no finite wall time leaves the wall time
        and the speed out, as a problem: stats.json stays valid JSON (a NaN stopped it)."""
        stream = self.stream()
        stream[0].time, stream[-1].time = start, end
        result = aggregate([], stream)
        assert result["wall_time"] is None and result["steps_per_second"] is None
        assert result["problems"] == {
            "run.start and run.end times give no finite wall time: left out": 1}
        assert json.loads(to_json(result))["step_count"] == 6

    def test_aborted_episodes_are_left_out_of_custom_epochs(self):
        """An aborted episode's custom values are in neither its episodes nor the epoch."""
        stream = [e for e in self.stream() if e.KIND != "run.end"]
        stream[3:3] = [Custom(name="x", episode=1, t=0, fields={"v": 100}),
                       Custom(name="x", episode=0, t=0, fields={"v": 1})]
        aggregator = StatsAggregator([StatSpec("x", "v")])
        for event in stream:
            aggregator.handle(event)
        result = aggregator.result()
        assert result["custom"]["x.v"]["episodes"] == {"0": 1}
        assert result["custom"]["x.v"]["epoch"] == 1.0
        assert aggregator.episode_values(1) == {"x.v": 100}  # still there for the generator

    def test_result_does_not_depend_on_interleaving(self):
        """Events of different episodes in any interleaving give the same result."""
        specs = [StatSpec("x", "v", epoch="tests.unit.test_stats:spread", keep_steps=True),
                 StatSpec("x", "v", name="floats", epoch="mean", step="mean")]
        per_episode = {}
        for event in custom_events({i: {0: [0.1 * i], 1: [0.7, i / 3]} for i in range(6)}):
            per_episode.setdefault(event.episode, []).append(event)
        results = []
        for seed in range(4):
            queues = [list(q) for q in per_episode.values()]
            stream, rng = [], random.Random(seed)
            while queues:
                queue = rng.choice(queues)
                stream.append(queue.pop(0))
                queues = [q for q in queues if q]
            results.append(to_json(aggregate(specs, stream)))
        assert len(set(results)) == 1


class TestValueCounts:
    """The returns and lengths of the completed episodes: the same summary whatever order
    they come in, and, while the values are few, memory that does not grow."""

    @pytest.mark.parametrize("distinct", [7, ValueCounts.DISTINCT_LIMIT + 500])
    def test_any_order_gives_the_same_values(self, distinct):
        values = [float(v) * 0.1 for v in range(distinct)] * 3 + [-0.0, 0.0, math.nan, -5.5]
        summaries = []
        for seed in range(3):
            random.Random(seed).shuffle(values)
            counts = ValueCounts(np.float64)
            for value in values:
                counts.add(value)
            ordered = counts.sorted()
            assert len(counts) == len(values) == len(ordered)
            np.testing.assert_array_equal(ordered[:-1], np.sort([v for v in values
                                                                 if not math.isnan(v)]))
            assert math.isnan(ordered[-1])
            assert not any(v == 0 and math.copysign(1.0, v) < 0 for v in ordered)  # no -0.0
            summaries.append(to_json({"s": summarize(ordered[:-1])}))
        assert len(set(summaries)) == 1

    @pytest.mark.parametrize("sizes", [(5, 9), (ValueCounts.DISTINCT_LIMIT + 3, 9),
                                       (9, ValueCounts.DISTINCT_LIMIT + 3), (3000, 3000)])
    def test_joined_through_msgpack_as_if_added_to_one(self, sizes):
        """Values added to two (either of them, both or neither spilled to an array, or
        the join spilling them) give, joined, the values of one that took them all."""
        from eventroll import codec

        rng = random.Random(sum(sizes))
        parts = [[rng.randrange(10_000) * 0.5 for _ in range(size)] + [-0.0, math.nan]
                 for size in sizes]
        one, first, later = (ValueCounts(np.float64) for _ in range(3))
        for counts, values in ((first, parts[0]), (later, parts[1])):
            for value in values:
                counts.add(value)
                one.add(value)
        first.join(codec.decode(codec.encode(later.portable())))
        np.testing.assert_array_equal(first.sorted(), one.sorted())
        assert len(first) == len(one) == sum(sizes) + 4

    def test_few_distinct_values_keep_memory_flat(self):
        """A million CartPole-like lengths (500 distinct) take no more memory than the first
        20,000 (in an array they would take 8 MB)."""
        import tracemalloc

        counts = ValueCounts(np.int64)
        rng = np.random.default_rng(0)
        lengths = rng.integers(8, 508, 1_000_000).tolist()
        for length in lengths[:20_000]:
            counts.add(length)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for length in lengths[20_000:]:
            counts.add(length)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert grown < 64_000, grown
        assert summarize(counts.sorted())["median"] == float(np.median(lengths))


class TestInProcessApi:
    def test_step_and_episode_values(self):
        """step_values gives a running step's values, episode_values a finished episode's."""
        aggregator = StatsAggregator([StatSpec("x", "v"), StatSpec("x", "v", name="n", step="len",
                                                                   group_by="g")])
        for t, fields in ((None, {"v": 1.5, "g": "a"}), (0, {"v": 2, "g": "a"}),
                          (0, {"v": 3, "g": "b"}), (0, {"v": 4, "g": "b"})):
            aggregator.handle(Custom(name="x", episode=4, t=t, fields=fields))
        assert aggregator.step_values(4, None) == {"x.v": 1.5, "n": {"a": 1}}
        assert aggregator.step_values(4, 0) == {"x.v": 9, "n": {"a": 1, "b": 2}}
        assert aggregator.step_values(4, 1) == {}
        aggregator.handle(episode(4, length=1)[1])
        assert aggregator.episode_values(4) == {"x.v": 10.5, "n": {"a": 2, "b": 2}}
        with pytest.raises(StatsQueryError, match="episode 5 has not ended"):
            aggregator.episode_values(5)

    def test_missing_fields_and_late_events_are_problems(self):
        """An event without the field, or after its episode ended, is counted, not raised."""
        starts, end = episode(0)
        stream = [*starts, Custom(name="x", episode=0, t=0, fields={"w": 1}), end,
                  Custom(name="x", episode=0, t=1, fields={"v": 1}),
                  Custom(name="x", episode=None, t=None, fields={"v": 1}),
                  Custom(name="other", episode=0, t=0, fields={})]
        result = aggregate([StatSpec("x", "v")], stream)
        assert result["problems"] == {
            "custom event 'x' after its episode ended: left out": 1,
            "custom event 'x' lacks the field 'v' (stat 'x.v'): left out": 1,
            "custom event 'x' without an episode: left out": 1}
        assert result["custom"]["x.v"]["epoch"] is None


class TestSpecs:
    @pytest.mark.parametrize("spec, message", [
        ({"event": "x"}, r"stats\[0\]: the key 'field' is missing"),
        ({"event": "x", "field": "v", "reduce": "sum"},
         r"stats\[0\]: unknown key 'reduce'; valid keys: event, field, step, episode, epoch, "
         "group_by, name, keep_steps"),
        ({"event": "x", "field": "v", "epoch": "avg"},
         r"stat 'x.v': unknown epoch reducer 'avg'; choose one of sum, mean, len, min, max, std, "
         r"median, histogram, or an import path 'module:function'"),
        ({"event": "x", "field": "v", "step": "tests.unit.test_stats:nothing"},
         "step reducer: module 'tests.unit.test_stats' has no attribute 'nothing'"),
        ({"event": "x", "field": "v", "episode": "math:pi"},
         "episode reducer 'math:pi' is a float"),
        ({"event": "", "field": "v"}, "stat event must be a non-empty string, got ''"),
        ({"event": "x", "field": "v", "keep_steps": "yes"}, "keep_steps must be true or false"),
        ({"event": "x", "field": "v", "group_by": 3}, "group_by must be a non-empty string"),
        ("x.v", r"stats\[0\]: a stat is a mapping"),
    ])
    def test_bad_specs_name_the_culprit(self, spec, message):
        """Each mistake in a spec is a one-line ConfigError naming it and the choices."""
        with pytest.raises(ConfigError, match=message):
            parse_specs([spec])

    def test_names_must_be_unique(self):
        """Two stats of one name are refused; a name tells them apart."""
        with pytest.raises(ConfigError, match="2 stats are named 'x.v'"):
            parse_specs([{"event": "x", "field": "v"}, StatSpec("x", "v", epoch="max")])
        specs = parse_specs([{"event": "x", "field": "v"},
                             {"event": "x", "field": "v", "name": "m"}])
        assert [spec.name for spec in specs] == ["x.v", "m"]

    def test_a_mapping_of_names_and_round_trip(self):
        """A mapping of name to spec names each stat by its key; to_mapping gives it back."""
        specs = parse_specs({"speed": {"event": "reward_part", "field": "value", "epoch": "max"}})
        assert specs == [StatSpec("reward_part", "value", epoch="max", name="speed")]
        assert parse_specs([specs[0].to_mapping()]) == specs
        with pytest.raises(ConfigError, match="stats.speed: the spec is named 'other'"):
            parse_specs({"speed": {"event": "e", "field": "f", "name": "other"}})
        with pytest.raises(ConfigError, match="got a single spec; give a list of specs"):
            parse_specs({"event": "e", "field": "f"})

    def test_callables_travel_by_import_path(self):
        """A module-level function is written by its import path; a lambda is refused."""
        mapping = StatSpec("x", "v", epoch=spread).to_mapping()
        assert mapping["epoch"] == "tests.unit.test_stats:spread"
        with pytest.raises(ConfigError, match="has no import path; define it at module level"):
            StatSpec("x", "v", epoch=lambda values: 0).to_mapping()


@pytest.fixture(scope="module")
def stats():
    """The built-in stream with grouped custom values in episodes 0 and 2, read back from JSON."""
    stream = TestBuiltins().stream()
    stream[3:3] = [part(0, 0, "a", 1.0), part(0, 1, "b", 2.0), part(0, 1, "a", 3.0),
                   part(2, 0, "b", 4.0)]
    result = aggregate([StatSpec("part", "value", group_by="kind", keep_steps=True),
                        StatSpec("part", "value", name="hist", epoch="histogram")], stream)
    return Statistics(json.loads(to_json(result)))


class TestQueries:
    def test_values_at_each_level(self, stats):
        """Built-ins at the epoch level; custom stats by level, episode, group and name."""
        assert stats.get_stats_value("episode_return", "epoch", "mean") == 3.25
        assert stats.get_stats_value("episode_count") == 2
        assert stats.get_stats_value("part.value", "epoch") == {"a": 4.0, "b": 3.0}
        assert stats.get_stats_value("part.value", "epoch", group="b") == 3.0
        assert stats.get_stats_value("part.value", "episode") == {0: {"a": 4.0, "b": 2.0},
                                                                  2: {"b": 4.0}}
        assert stats.get_stats_value("part.value", "episode", group="a") == {0: 4.0}
        assert stats.get_stats_value("part.value", "episode", episode=2, group="b") == 4.0
        assert stats.get_stats_value("part.value", "step", episode=0, group="a") == [
            [0, 1.0], [1, 3.0]]
        assert stats.get_stats_value("hist", "epoch", "counts") == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        assert stats.names[-2:] == ["part.value", "hist"]

    @pytest.mark.parametrize("args, kwargs, message", [
        (("speed",), {}, "no statistic 'speed'; built-in: episode_count, .*episode_length; "
                         "custom: part.value, hist"),
        (("episode_return", "episode"), {},
         "'episode_return' has no level 'episode'; its levels: epoch"),
        (("hist", "step"), {}, "its levels: epoch, episode \\(step values need keep_steps\\)"),
        (("part.value", "epoch"), {"group": "c"}, "has no group 'c' here; groups: a, b"),
        (("hist", "epoch"), {"group": "a"}, "'hist' has no groups \\(no group_by\\)"),
        (("part.value", "episode"), {"episode": 1}, "no episode value for episode 1; episodes with "
                                                     "values: 0, 2"),
        (("episode_length", "epoch", "average"), {}, "no 'average'; names: count, mean, std"),
        (("episode_count", "epoch", "mean"), {}, "its value is not a map"),
        (("episode_count",), {"episode": 0}, "is a run total"),
    ])
    def test_unknown_things_are_named(self, stats, args, kwargs, message):
        """Each wrong query is a StatsQueryError (a KeyError) that lists what exists."""
        with pytest.raises(StatsQueryError, match=message) as info:
            stats.get_stats_value(*args, **kwargs)
        assert isinstance(info.value, KeyError)

    def test_not_a_stats_file(self, tmp_path):
        """Loading some other JSON file says it is not a stats result."""
        path = tmp_path / "other.json"
        path.write_text('{"episodes": 3}')
        with pytest.raises(ValueError, match="not an eventroll stats result"):
            Statistics.load(path)


class Recording:
    """A custom-event sink that keeps what it is given (the loop's NullSink otherwise)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def custom(self, name, episode, t, fields) -> None:
        self.events.append((name, episode, t, fields))


class TestRecordEvent:
    def test_outside_an_episode_nothing_is_recorded(self):
        """Outside an episode record_event returns False; a bad name is always an error."""
        assert record_event("x", value=1) is False
        with pytest.raises(ValueError, match="event name must be a non-empty str, got ''"):
            record_event("", value=1)

    def test_emitting_scopes_nest(self):
        """An inner episode scope takes the events until it ends, then the outer one again."""
        outer, inner = Recording(), Recording()
        with emitting(outer, 1) as emitter:
            emitter.t = 3
            with emitting(inner, 2):
                assert record_event("a", name="field called name")
            assert record_event("b", v=1)
        assert record_event("c") is False
        assert inner.events == [("a", 2, None, {"name": "field called name"})]
        assert outer.events == [("b", 1, 3, {"v": 1})]

    def test_the_loop_sets_episode_and_step(self):
        """run_episode tags events with the episode and t: None at reset, then 0, 1, ..."""
        from eventroll.testing import FailingEnv

        class Env(FailingEnv):
            def reset(self, **kwargs):
                record_event("env", at="reset")
                return super().reset(**kwargs)

            def step(self, action):
                record_event("env", at="step")
                return super().step(action)

        class Policy:
            def seed(self, seed):
                pass

            def compute_action(self, observation, *, deterministic=False):
                record_event("policy", observation=observation)
                return 0

        class Sink(Recording, NullSink):
            pass

        sink = Sink()
        summary = run_episode(Env(length=2), Policy(), 7, env_seed=1, agent_seed=1, sink=sink)
        assert summary.length == 2 and not summary.aborted
        assert [(name, ep, t) for name, ep, t, _ in sink.events] == [
            ("env", 7, None), ("policy", 7, 0), ("env", 7, 0), ("policy", 7, 1), ("env", 7, 1)]
        assert record_event("x") is False  # the scope ended with the episode
