"""Seeds, sequence checks, env and policy resolution, called directly with plain data."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest

from eventroll import ParallelRunner, SequentialRunner, codec
from eventroll.environments import env_factory
from eventroll.errors import ConfigError
from eventroll.policies import RandomPolicy, build_policy
from eventroll.runners.loop import run_interaction_loop
from eventroll.seeding import (DerivedSeeds, derive_seeds, episode_seeds, resolve_seeds,
                               seeds_record)
from eventroll.stream import SequenceChecker


class TestSeeds:
    def test_prefix_does_not_depend_on_count(self):
        """Episode i's seed is the same whether the run has 5 or 500 episodes."""
        assert derive_seeds(7, 500)[:5].tolist() == list(derive_seeds(7, 5))

    @pytest.mark.parametrize("base", [0, 1, 7, 2**31 - 1, 2**40 + 5, 2**70])
    def test_derived_seeds_are_numpys_seed_sequence(self, base):
        """Seed i is word i of SeedSequence(base).generate_state(n), asked in any order
        (across blocks, backwards, negative), whole (np.asarray) or sliced."""
        n = 3 * DerivedSeeds.BLOCK + 5
        expected = np.random.SeedSequence(base).generate_state(n, dtype=np.uint32)
        seeds = derive_seeds(base, n)
        order = [n - 1, 3, 2 * DerivedSeeds.BLOCK, DerivedSeeds.BLOCK - 1, DerivedSeeds.BLOCK, 0]
        assert [seeds[i] for i in order] == [int(expected[i]) for i in order]
        assert list(seeds) == expected.tolist() and seeds[-1] == int(expected[-1])
        assert np.array_equal(np.asarray(seeds), expected)
        assert seeds[10:2000:7].tolist() == expected[10:2000:7].tolist()
        with pytest.raises(IndexError, match=f"episode {n} of a run of {n} episodes"):
            seeds[n]

    def test_derived_seeds_are_the_same_size_however_long_the_run(self):
        """Derived seeds are two numbers, in memory and in run.start, for 4,500 or 450 million
        episodes (an array grew 4 bytes an episode)."""
        sizes = []
        for n in (4_500, 450_000_000):
            seeds = resolve_seeds(n, env_base_seed=1, agent_base_seed=2)
            assert seeds.n_episodes == n and int(seeds.agent[n - 1]) >= 0
            record = seeds_record(seeds.env)
            assert record == {"seed_sequence": 1, "n": n}
            assert episode_seeds(codec.decode(codec.encode(record))) == seeds.env
            sizes.append(len(codec.encode(record)))
        assert sizes[1] - sizes[0] <= 4  # the width of n only

    def test_run_start_seeds_of_every_form_are_read(self):
        """A list, an array (logs of format 1) and the map; a malformed map is no seeds."""
        assert episode_seeds([4, 5])[1] == 5
        assert episode_seeds(np.array([4, 5], np.uint32))[1] == 5
        assert episode_seeds({"seed_sequence": 7, "n": 3})[2] == int(derive_seeds(7, 3)[2])
        for bad in ({"seed_sequence": -1, "n": 3}, {"seed_sequence": 7}, {"n": 3, "x": 1},
                    {"seed_sequence": 7, "n": True}):
            assert len(episode_seeds(bad)) == 0

    def test_explicit_lists_shorten_the_run_with_a_warning(self):
        """min(n_episodes, len(seeds)) episodes, and a warning that says so."""
        seeds = resolve_seeds(10, explicit_env_seeds=[4, 5], agent_base_seed=1)
        assert seeds.env == [4, 5] and len(seeds.agent) == 2
        assert "holds 2 seeds for 10 episodes" in seeds.warnings[0]

    def test_unset_base_seeds_are_drawn_and_kept(self):
        """A null base seed is drawn at random and recorded on the result."""
        seeds = resolve_seeds(3)
        assert seeds.env == derive_seeds(seeds.env_base_seed, 3)

    @pytest.mark.parametrize("bad", [[], [-1], ["a"], [True]])
    def test_bad_explicit_seeds(self, bad):
        """Explicit seeds must be a non-empty list of non-negative integers."""
        with pytest.raises(ConfigError, match="explicit_env_seeds"):
            resolve_seeds(3, explicit_env_seeds=bad)


class TestSequenceChecker:
    def test_contiguous_stream_has_no_errors(self):
        """Interleaved workers with contiguous numbers pass."""
        checker = SequenceChecker()
        for seq, (worker, wseq) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
            assert checker.observe(seq, worker, wseq) == []
        assert checker.finish(4, {0: 1, 1: 1}) == []

    def test_gap_names_worker_and_range(self):
        """A skipped wseq is reported with the worker and the missing range."""
        checker = SequenceChecker()
        checker.observe(0, 2, 0)
        assert checker.observe(1, 2, 4) == ["worker 2: events wseq 1..3 missing"]

    def test_missing_tail_is_found_at_finish(self):
        """Events announced but never received are reported at the end."""
        checker = SequenceChecker()
        checker.observe(0, 0, 0)
        assert checker.finish(3, {0: 2}) == ["global: events seq 1..2 missing",
                                             "worker 0: events wseq 1..2 missing"]


class TestEnvAndPolicy:
    def test_env_by_id_with_kwargs_and_wrappers(self):
        """A mapping names the env and its kwargs; wrappers apply in order."""
        factory = env_factory({"name": "CartPole-v1", "sutton_barto_reward": True},
                              {"gymnasium.wrappers.ClipReward": {"min_reward": -0.5}})
        env = factory()
        assert isinstance(env, gym.wrappers.ClipReward)
        assert env.unwrapped._sutton_barto_reward is True

    def test_unknown_wrapper_fails_once_with_its_path(self):
        """A wrapper path that does not import is named."""
        with pytest.raises(ConfigError, match="no attribute 'Nope'"):
            env_factory("CartPole-v1", {"gymnasium.wrappers:Nope": {}})

    def test_policy_by_import_path_gets_spaces(self):
        """A policy class by import path is built with the env's spaces."""
        env = gym.make("CartPole-v1")
        policy = build_policy({"name": "eventroll.policies:RandomPolicy"}, env.observation_space,
                              env.action_space)
        assert isinstance(policy, RandomPolicy)

    def test_not_a_policy(self):
        """An object without the policy methods is refused with what it needs."""
        env = gym.make("CartPole-v1")
        with pytest.raises(ConfigError, match="needs seed"):
            build_policy(object(), env.observation_space, env.action_space)

    @pytest.mark.parametrize("n", [0, -1, 1.5, True])
    def test_n_processes_below_one_is_refused_at_once(self, n):
        """ParallelRunner rejects n_processes < 1 (and non-integers) when constructed."""
        with pytest.raises(ConfigError, match="n_processes"):
            ParallelRunner(n_processes=n)


@pytest.mark.parametrize("space", [gym.spaces.Discrete(2), gym.spaces.Discrete(9000, start=-3),
                                   gym.spaces.Discrete(3, dtype=np.int32)])
def test_random_policy_gives_seeded_scalars_of_the_space(space):
    """Discrete actions are numpy scalars of the space's dtype (beyond the prebuilt table
    too), every value in the space is drawn, and a seed repeats the draws."""
    policy = RandomPolicy(space)
    draws = []
    for _ in range(2):
        policy.seed(7)
        draws.append([policy.compute_action(None) for _ in range(3000)])
    assert draws[0] == draws[1]
    assert all(type(a) is space.dtype.type and space.contains(a) for a in draws[0])
    values = {int(a) for a in draws[0]}
    if space.n < 10:
        assert values == set(range(space.start, space.start + space.n))
    else:
        assert max(values) >= space.start + RandomPolicy.TABLE_SIZE  # beyond the table too


class TestInteractionLoop:
    def test_seeded_loop_is_repeatable_and_calls_back(self):
        """run_interaction_loop with seed lists repeats exactly; the callback sees each reset."""
        env = gym.make("CartPole-v1")
        policy = RandomPolicy(env.action_space)
        resets = []
        runs = [run_interaction_loop(env, policy, 3, env_seeds=[1, 2, 3], agent_seeds=[4, 5, 6],
                                     after_reset_callback=lambda e, i, obs, info: resets.append(i))
                for _ in range(2)]
        assert [s.length for s in runs[0]] == [s.length for s in runs[1]]
        assert [s.return_ for s in runs[0]] == [s.return_ for s in runs[1]]
        assert resets == [0, 1, 2, 0, 1, 2]

    def test_too_few_seeds(self):
        """Seed lists shorter than n_episodes are refused."""
        env = gym.make("CartPole-v1")
        with pytest.raises(ValueError, match="env_seeds holds 1 seeds"):
            run_interaction_loop(env, RandomPolicy(env.action_space), 2, env_seeds=[1])


def test_sequential_runner_accepts_an_env_object(tmp_path):
    """An env object is used as it is by the sequential runner."""
    env = gym.make("CartPole-v1")
    result = SequentialRunner(n_episodes=2, env_base_seed=0, agent_base_seed=0).run_with(
        env, run_dir=str(tmp_path / "run"))
    assert result.ok and np.isfinite(result.steps)


@pytest.mark.parametrize("kind", [[1], {"a": 1}, 7, None])
def test_a_recorder_rejects_an_event_whose_kind_is_no_name(kind):
    """An event whose kind is not a string (a list cannot even be looked up in a set) is
    rejected and counted by a recorder that names array_kinds, not fatal to it."""
    from eventroll.bus import Delivery
    from eventroll.recorders.base import Reading, Rejections, _checked
    body = codec.encode({"kind": kind, "worker": 0, "wseq": 0}) + codec.encode(
        {"kind": "custom", "worker": 0, "wseq": 1, "time": 0.0, "name": "ok"})
    rejected = Rejections()
    taken = _checked(Delivery(0, 2, body), Reading(frozenset({"custom"})), SequenceChecker(),
                     rejected)
    assert [(event.seq, event.KIND) for event in taken] == [(1, "custom")]
    assert rejected.count == 1 and rejected.first[0].startswith("seq 0: unknown event kind")


def test_a_flood_of_rejections_keeps_a_bounded_record():
    """A recorder fed garbage counts every refusal but describes only the first ones."""
    from eventroll.recorders.base import Rejections
    rejected = Rejections()
    for i in range(100_000):
        rejected.add(f"seq {i}: garbage")
    assert rejected.count == 100_000 and len(rejected.first) == Rejections.KEPT
    assert rejected.first[-1] == f"seq {Rejections.KEPT - 1}: garbage"


class TestRecorderGroup:
    """Recorders sharing a process: each gets every event; one that fails stops alone."""

    class Collects:
        array_kinds = frozenset({"custom"})

        def __init__(self) -> None:
            self.kinds: list[str] = []

        def handle(self, event):
            self.kinds.append(event.KIND)

        def tick(self):
            pass

        def close(self):
            return {"handled": len(self.kinds)}

    class BreaksOnSecond(Collects):
        array_kinds = frozenset({"episode.start"})

        def handle(self, event):
            if self.kinds:
                raise OSError("disk full")
            super().handle(event)

    def events(self):
        from eventroll.events import Custom
        return [Custom(name=f"e{i}", episode=0, t=i, fields={}, worker=0, wseq=i, seq=i)
                for i in range(3)]

    def test_a_failing_member_stops_alone(self):
        from eventroll.recorders.base import RecorderGroup, member_reports
        collects, breaks = self.Collects(), self.BreaksOnSecond()
        group = RecorderGroup({"collects": collects, "breaks": breaks})
        assert group.array_kinds == {"custom", "episode.start"}
        for event in self.events():
            group.handle(event)
            group.tick()
        assert collects.kinds == ["custom"] * 3 and breaks.kinds == ["custom"]
        reports = member_reports("collects+breaks", {**group.close(), "events": 3,
                                                     "errors": ["seq 9: shared"]})
        assert reports["collects"] == {"handled": 3, "events": 3, "errors": ["seq 9: shared"]}
        assert reports["breaks"]["handled"] == 1 and reports["breaks"]["errors"][0] == "seq 9: shared"
        assert "stopped writing its artifact at seq 1 (custom): OSError: disk full; it holds what " \
            "was written before" in reports["breaks"]["errors"][1]

    def test_a_member_that_reads_every_array_makes_the_group_read_them(self):
        from eventroll.recorders.base import RecorderGroup
        every = self.Collects()
        every.array_kinds = None
        assert RecorderGroup({"a": self.Collects(), "b": every}).array_kinds is None

    def test_the_event_log_has_a_process_of_its_own(self):
        from eventroll.recorders.base import process_groups
        from eventroll.recording import RecordingOptions, recorder_specs
        specs = recorder_specs(RecordingOptions(), "/tmp/run", "id", "CartPole-v1")
        assert [(name, [spec.name for spec in group]) for name, group in process_groups(specs)] \
            == [("eventlog", ["eventlog"]), ("trajectories+stats", ["trajectories", "stats"])]


def test_seed_lists_of_run_start_are_checked_item_by_item():
    """run.start's seed lists (one seed per episode) are checked without jsonschema, and
    a bad seed is still named with its index."""
    from eventroll.validation import schema_problems
    record = {"kind": "run.start", "seq": 0, "worker": -1, "wseq": 0, "time": 0.0,
              "run_id": "r", "runner": "parallel", "n_episodes": 3, "n_workers": 1, "env": "e",
              "env_seeds": [1, 2, -3], "agent_seeds": [4, True, 6]}
    assert schema_problems("run.start", record) == [
        "run.start record at env_seeds/2: -3 is not a seed (an integer >= 0)",
        "run.start record at agent_seeds/1: True is not a seed (an integer >= 0)"]
    good = {**record, "env_seeds": list(range(100_000)), "agent_seeds": list(range(100_000))}
    assert schema_problems("run.start", good) == []


class TestComposeInChild:
    def test_gives_what_compose_gives_and_reaps_its_process(self):
        """The config composed in a forked process equals the one composed here, and the
        process is gone once the answer is read."""
        from eventroll.cli.config import ComposeInChild, compose

        overrides = ["runner.n_episodes=3", "seeding.env_base_seed=5", "hydra.run.dir=/tmp/x"]
        composing = ComposeInChild(overrides)
        assert composing.result() == compose(overrides)
        with pytest.raises(ChildProcessError):
            os.waitpid(composing._call.pid, os.WNOHANG)

    def test_bad_input_is_one_config_error(self):
        """An unknown key comes back as the ConfigError compose raises, naming the key."""
        from eventroll.cli.config import ComposeInChild

        with pytest.raises(ConfigError, match="unknown config key 'runner.n_episodez'"):
            ComposeInChild(["runner.n_episodez=3"]).result()


class TestForkedCall:
    def test_an_answer_an_error_and_no_answer(self):
        """A map comes back; an exception comes back as one line; a child that ends without
        an answer, or gives none in time, is ChildFailed: every child is reaped."""
        import time

        from eventroll.forked import ChildFailed, ForkedCall

        calls = [ForkedCall(lambda: {"pid": os.getpid(), "data": b"\x00" * 300_000}, "er-test"),
                 ForkedCall(lambda: 1 / 0, "er-test"),
                 ForkedCall(lambda: os._exit(3), "er-test"),
                 ForkedCall(lambda: time.sleep(30) or {}, "er-test")]
        answer = calls[0].answer(30)
        assert answer["pid"] == calls[0].pid != os.getpid() and len(answer["data"]) == 300_000
        assert calls[1].answer(30) == {"error": "ZeroDivisionError: division by zero"}
        with pytest.raises(ChildFailed, match="ended without an answer"):
            calls[2].answer(30)
        started = time.monotonic()
        with pytest.raises(ChildFailed, match="no answer within 0.5 s"):
            calls[3].answer(0.5)
        assert time.monotonic() - started < 10
        for call in calls:
            with pytest.raises(ChildProcessError):
                os.waitpid(call.pid, os.WNOHANG)

    def test_the_child_leaves_ctrl_c_to_its_caller(self):
        """SIGINT (a Ctrl-C reaches the whole process group) does not stop the child: the
        caller decides, and stop() kills and reaps it."""
        import signal
        import time

        from eventroll.forked import ForkedCall

        finishing = ForkedCall(lambda: time.sleep(0.5) or {"done": True}, "er-test")
        stopped = ForkedCall(lambda: time.sleep(30) or {}, "er-test")
        time.sleep(0.2)
        for call in (finishing, stopped):
            os.kill(call.pid, signal.SIGINT)
        assert finishing.answer(30) == {"done": True}
        started = time.monotonic()
        stopped.stop()
        assert time.monotonic() - started < 5
        with pytest.raises(ChildProcessError):
            os.waitpid(stopped.pid, os.WNOHANG)
