"""The rollout generator with real Gymnasium envs and vector envs, without a bus."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from eventroll.custom import record_event
from eventroll.errors import ConfigError
from eventroll.generator import RolloutGenerator
from eventroll.policies import RandomPolicy
from eventroll.stats import StatSpec
from eventroll.testing import SpaceEnv, sample_spaces


class CounterEnv(gym.Env):
    """Episodes of ``length`` steps that end by termination. The observation is
    ``[t, e]``: the step index and this env's episode number; the reward is ``t``
    after the step. The reset info holds the episode number, the step info the action.
    Each step records the custom event ``tick`` with ``value=t``, each reset ``reset``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, length: int = 3) -> None:
        self.observation_space = spaces.Box(0, 1000, shape=(2,), dtype=np.int64)
        self.action_space = spaces.Discrete(2)
        self.length = length
        self.resets = 0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self.resets += 1
        record_event("reset", value=1)
        return self._observation(), {"episode": self.resets - 1}

    def step(self, action: Any):
        self._t += 1
        record_event("tick", value=self._t)
        return self._observation(), float(self._t), self._t >= self.length, False, {
            "action": int(action)}

    def _observation(self) -> np.ndarray:
        return np.array([self._t, self.resets - 1], dtype=np.int64)


class NestedEnv(gym.Env):
    """Dict and Tuple observation and action spaces; episodes of 4 steps."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Dict({
            "pos": spaces.Box(-1, 1, shape=(2,), dtype=np.float32),
            "parts": spaces.Tuple((spaces.Discrete(3), spaces.Box(0, 1, shape=(3,))))})
        self.action_space = spaces.Dict({"move": spaces.Discrete(2),
                                         "force": spaces.Box(-1, 1, shape=(2,))})
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any):
        assert action in self.action_space
        self._t += 1
        return self.observation_space.sample(), 1.0, self._t >= 4, False, {}


class RecordingPolicy:
    """Samples actions from a (batched) action space and remembers what it was asked."""

    def __init__(self, action_space: spaces.Space) -> None:
        self.space = action_space
        self.space.seed(0)
        self.calls: list[tuple[Any, bool]] = []

    def seed(self, seed: int) -> None:
        self.space.seed(seed)

    def compute_action(self, observation: Any, *, deterministic: bool = False) -> Any:
        self.calls.append((observation, deterministic))
        return self.space.sample()


class TalkingPolicy(RecordingPolicy):
    """Records the custom event ``policy`` with ``value=2`` at each action."""

    def compute_action(self, observation: Any, *, deterministic: bool = False) -> Any:
        record_event("policy", value=2)
        return super().compute_action(observation, deterministic=deterministic)


class LogitsPolicy(RecordingPolicy):
    """Also reports logits: ``[t, -t]`` from the counter observation."""

    def compute_action_with_logits(self, observation: Any, *,
                                   deterministic: bool = False) -> tuple[Any, np.ndarray]:
        action = self.compute_action(observation, deterministic=deterministic)
        t = np.asarray(observation)[..., 0].astype(np.float32)
        return action, np.stack([t, -t], axis=-1)


def counter_vector(lengths: list[int], mode: AutoresetMode) -> SyncVectorEnv:
    return SyncVectorEnv([lambda n=n: CounterEnv(n) for n in lengths], autoreset_mode=mode)


def check_transitions(record) -> None:
    """Every valid entry steps ``t`` by one within the same episode of its env."""
    obs, nxt, valid = record.observations, record.next_observations, record.valid
    np.testing.assert_array_equal(nxt[..., 0][valid], obs[..., 0][valid] + 1)
    np.testing.assert_array_equal(nxt[..., 1][valid], obs[..., 1][valid])
    np.testing.assert_array_equal(record.rewards[valid], nxt[..., 0][valid])


class TestSingleEnv:
    def test_rollout_records_n_steps(self):
        """A 10-step CartPole rollout gives 10 entries of each column, in their spaces."""
        env = gym.make("CartPole-v1")
        record = RolloutGenerator(env).rollout(RandomPolicy(env.action_space), n_steps=10)
        assert len(record) == 10 and record.batch_shape == ()
        assert record.observations.shape == (10, 4) and record.actions.shape == (10,)
        assert record.rewards.dtype == np.float64 and record.dones.dtype == bool
        assert all(env.action_space.contains(a) for a in record.actions)
        assert len(record.infos) == 10 and record.valid.all()
        assert record.next_observations is None and record.logits is None

    def test_resets_and_continues_within_a_rollout(self):
        """Episodes of 5 steps: a 12-step rollout crosses two resets and ends mid-episode."""
        env = CounterEnv(5)
        record = RolloutGenerator(env).rollout(RecordingPolicy(env.action_space), n_steps=12)
        assert len(record) == 12
        assert np.flatnonzero(record.dones).tolist() == [4, 9]
        assert record.terminated[[4, 9]].all() and not record.truncated.any()
        assert record.episodes.tolist() == [0] * 5 + [1] * 5 + [2] * 2
        assert record.observations[:, 0].tolist() == [0, 1, 2, 3, 4] * 2 + [0, 1]
        assert env.resets == 3

    def test_terminate_on_done(self):
        """With terminate_on_done a 10-step rollout stops at the end of a 5-step episode."""
        env = CounterEnv(5)
        generator = RolloutGenerator(env, terminate_on_done=True)
        record = generator.rollout(RecordingPolicy(env.action_space), n_steps=10)
        assert len(record) == 5 and record.dones[-1] and not record.dones[:-1].any()
        assert generator.last_observation.tolist() == [0, 1]  # the next episode is ready

    def test_n_steps_none_runs_until_done(self):
        """n_steps=None with terminate_on_done gives exactly the rest of the episode."""
        env = CounterEnv(6)
        generator = RolloutGenerator(env, terminate_on_done=True)
        policy = RecordingPolicy(env.action_space)
        assert len(generator.rollout(policy, n_steps=2)) == 2
        record = generator.rollout(policy, n_steps=None)
        assert len(record) == 4 and record.dones[-1]

    def test_n_steps_none_needs_terminate_on_done(self):
        """n_steps=None without terminate_on_done is a ConfigError (a ValueError) saying so."""
        env = CounterEnv()
        with pytest.raises(ValueError, match=r"terminate_on_done=True") as info:
            RolloutGenerator(env).rollout(RecordingPolicy(env.action_space), n_steps=None)
        assert isinstance(info.value, ConfigError)
        assert env.resets == 0

    @pytest.mark.parametrize("bad", [0, -3, 2.5, True])
    def test_bad_n_steps(self, bad):
        """n_steps must be a positive integer; the error names the value."""
        env = CounterEnv()
        with pytest.raises(ConfigError, match="positive integer"):
            RolloutGenerator(env).rollout(RecordingPolicy(env.action_space), n_steps=bad)

    def test_next_observations_equal_the_following_observations(self):
        """next_observations[t] == observations[t+1], but where an episode ended: there it
        is the terminal observation and observations[t+1] the reset one."""
        env = CounterEnv(4)
        record = RolloutGenerator(env, record_next_observations=True).rollout(
            RecordingPolicy(env.action_space), n_steps=11)
        check_transitions(record)
        for t in range(10):
            if record.dones[t]:
                assert record.next_observations[t].tolist() == [4, record.observations[t, 1]]
                assert record.observations[t + 1].tolist() == [0, record.observations[t, 1] + 1]
            else:
                np.testing.assert_array_equal(record.next_observations[t],
                                              record.observations[t + 1])

    def test_rollouts_continue_without_reset(self):
        """A second rollout starts where the first left off, in the same episode."""
        env = CounterEnv(10)
        generator = RolloutGenerator(env, record_next_observations=True)
        policy = RecordingPolicy(env.action_space)
        first = generator.rollout(policy, n_steps=3)
        second = generator.rollout(policy, n_steps=3)
        assert env.resets == 1
        np.testing.assert_array_equal(second.observations[0], first.next_observations[-1])
        assert second.observations[:, 0].tolist() == [3, 4, 5]
        assert first.episodes.tolist() + second.episodes.tolist() == [0] * 6
        assert (first.trajectory_id, second.trajectory_id) == (0, 1)

    def test_last_observation_skips_the_reset(self):
        """An assigned last_observation is where the first rollout starts; no reset happens."""
        env = CounterEnv(3)
        env.reset()
        generator = RolloutGenerator(env)
        generator.last_observation = np.array([0, 0])
        record = generator.rollout(RecordingPolicy(env.action_space), n_steps=2)
        assert env.resets == 1  # only ours, above
        assert record.observations[0].tolist() == [0, 0]

    def test_assigning_none_resets(self):
        """last_observation = None makes the next rollout reset the env and start an episode."""
        env = CounterEnv(10)
        generator = RolloutGenerator(env)
        policy = RecordingPolicy(env.action_space)
        generator.rollout(policy, n_steps=2)
        generator.last_observation = None
        record = generator.rollout(policy, n_steps=2)
        assert env.resets == 2 and record.observations[0].tolist() == [0, 1]
        assert record.episodes.tolist() == [1, 1]

    @pytest.mark.parametrize("deterministic", [False, True])
    def test_deterministic_is_passed_to_the_policy(self, deterministic):
        """compute_action gets the generator's deterministic flag at every step."""
        env = CounterEnv()
        policy = RecordingPolicy(env.action_space)
        RolloutGenerator(env, deterministic=deterministic).rollout(policy, n_steps=5)
        assert [flag for _, flag in policy.calls] == [deterministic] * 5

    def test_logits_are_recorded_when_asked(self):
        """record_logits uses compute_action_with_logits and stacks what it returns."""
        env = CounterEnv(4)
        policy = LogitsPolicy(env.action_space)
        record = RolloutGenerator(env, record_logits=True, deterministic=True).rollout(
            policy, n_steps=6)
        assert record.logits.shape == (6, 2)
        np.testing.assert_array_equal(record.logits[:, 0], record.observations[:, 0])
        assert [flag for _, flag in policy.calls] == [True] * 6

    def test_logits_need_the_policy_method(self):
        """Asking for logits from a policy without compute_action_with_logits names the method."""
        env = CounterEnv()
        with pytest.raises(ConfigError, match=r"RecordingPolicy\.compute_action_with_logits"):
            RolloutGenerator(env, record_logits=True).rollout(RecordingPolicy(env.action_space), 3)

    def test_explicit_trajectory_id(self):
        """A given trajectory_id (0 included) is kept; the default is the rollout's number."""
        env = CounterEnv()
        generator = RolloutGenerator(env)
        policy = RecordingPolicy(env.action_space)
        assert generator.rollout(policy, 1, trajectory_id="a").trajectory_id == "a"
        assert generator.rollout(policy, 1, trajectory_id=0).trajectory_id == 0
        assert generator.rollout(policy, 1).trajectory_id == 2

    def test_dict_and_tuple_spaces(self):
        """Dict spaces give maps of arrays, Tuple spaces lists of arrays, step first."""
        env = NestedEnv()
        record = RolloutGenerator(env, record_next_observations=True).rollout(
            RecordingPolicy(env.action_space), n_steps=6)
        assert record.observations["pos"].shape == (6, 2)
        assert [part.shape for part in record.observations["parts"]] == [(6,), (6, 3)]
        assert record.next_observations["pos"].shape == (6, 2)
        assert record.actions["move"].shape == (6,) and record.actions["force"].shape == (6, 2)


class TestVectorEnv:
    def test_batch_shape(self):
        """A vector env of 3 gives arrays of shape (n_steps, 3, ...)."""
        env = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync")
        policy = RecordingPolicy(env.action_space)
        record = RolloutGenerator(env, record_next_observations=True).rollout(policy, n_steps=10)
        assert len(record) == 10 and record.batch_shape == (3,)
        assert record.observations.shape == record.next_observations.shape == (10, 3, 4)
        assert record.actions.shape == record.rewards.shape == record.dones.shape == (10, 3)
        assert record.valid.shape == record.episodes.shape == (10, 3)
        assert all(np.shape(obs) == (3, 4) for obs, _ in policy.calls)  # batched observations

    def test_logits_of_a_batch(self):
        """The policy gets the batched observation and its batched logits are stacked."""
        env = counter_vector([3, 4], AutoresetMode.SAME_STEP)
        record = RolloutGenerator(env, record_logits=True).rollout(
            LogitsPolicy(env.action_space), n_steps=5)
        assert record.logits.shape == (5, 2, 2)
        np.testing.assert_array_equal(record.logits[..., 0], record.observations[..., 0])

    def test_next_step_autoreset_marks_reset_steps_invalid(self):
        """NEXT_STEP: the step after an episode ends resets that sub-env; its entry is not
        a transition (valid False, episode -1, no reward) and its next observation is the
        reset one. Also across a rollout boundary."""
        env = counter_vector([2, 3], AutoresetMode.NEXT_STEP)
        generator = RolloutGenerator(env, record_next_observations=True)
        policy = RecordingPolicy(env.action_space)
        first = generator.rollout(policy, n_steps=2)
        second = generator.rollout(policy, n_steps=7)
        valid = np.concatenate([first.valid, second.valid])
        assert valid[:, 0].tolist() == [1, 1, 0, 1, 1, 0, 1, 1, 0]
        assert valid[:, 1].tolist() == [1, 1, 1, 0, 1, 1, 1, 0, 1]
        for record in (first, second):
            check_transitions(record)
            invalid = ~record.valid
            assert (record.rewards[invalid] == 0).all() and not record.dones[invalid].any()
            assert (record.episodes[invalid] == -1).all()
            assert (record.next_observations[invalid][:, 0] == 0).all()
            np.testing.assert_array_equal(record.next_observations[:-1], record.observations[1:])
        episodes = np.concatenate([first.episodes, second.episodes])
        assert episodes[:, 0].tolist() == [0, 0, -1, 2, 2, -1, 4, 4, -1]
        assert episodes[:, 1].tolist() == [1, 1, 1, -1, 3, 3, 3, -1, 5]

    def test_same_step_autoreset_takes_final_observations(self):
        """SAME_STEP: every entry is a transition; where an episode ended the next
        observation is the terminal one (info["final_obs"]) and the following
        observation the reset one."""
        env = counter_vector([2, 3], AutoresetMode.SAME_STEP)
        record = RolloutGenerator(env, record_next_observations=True).rollout(
            RecordingPolicy(env.action_space), n_steps=7)
        assert record.valid.all()
        check_transitions(record)
        assert record.dones[:, 0].tolist() == [0, 1, 0, 1, 0, 1, 0]
        assert record.dones[:, 1].tolist() == [0, 0, 1, 0, 0, 1, 0]
        assert record.observations[:, 0, 0].tolist() == [0, 1, 0, 1, 0, 1, 0]
        assert record.observations[:, 0, 1].tolist() == [0, 0, 1, 1, 2, 2, 3]
        assert record.episodes[:, 0].tolist() == [0, 0, 2, 2, 4, 4, 5]
        assert record.episodes[:, 1].tolist() == [1, 1, 1, 3, 3, 3, 6]

    def test_disabled_autoreset_resets_done_sub_envs(self):
        """DISABLED: the generator resets only the sub-envs whose episode ended."""
        env = counter_vector([2, 3], AutoresetMode.DISABLED)
        record = RolloutGenerator(env, record_next_observations=True).rollout(
            RecordingPolicy(env.action_space), n_steps=7)
        assert record.valid.all()
        check_transitions(record)
        assert record.observations[:, 0, 0].tolist() == [0, 1, 0, 1, 0, 1, 0]
        assert record.observations[:, 1, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
        assert [sub.resets for sub in env.envs] == [4, 3]

    def test_last_observation_skips_the_reset(self):
        """An assigned batched observation starts one episode per sub-env, without reset."""
        env = counter_vector([3, 3], AutoresetMode.NEXT_STEP)
        observation, _ = env.reset()
        generator = RolloutGenerator(env)
        generator.last_observation = observation
        record = generator.rollout(RecordingPolicy(env.action_space), n_steps=2)
        assert [sub.resets for sub in env.envs] == [1, 1]
        assert record.episodes.tolist() == [[0, 1], [0, 1]]
        np.testing.assert_array_equal(record.observations[0], observation)

    def test_terminate_on_done_stops_when_any_sub_env_is_done(self):
        """With sub-env episodes of 3 and 5 steps the rollout stops after step 3."""
        env = counter_vector([5, 3], AutoresetMode.NEXT_STEP)
        generator = RolloutGenerator(env, terminate_on_done=True)
        record = generator.rollout(RecordingPolicy(env.action_space), n_steps=None)
        assert len(record) == 3 and record.dones[-1].tolist() == [False, True]

    def test_actions_reach_their_sub_env(self):
        """Sub-env i steps with entry i of the batched action."""
        env = counter_vector([4, 4, 4], AutoresetMode.SAME_STEP)
        record = RolloutGenerator(env).rollout(RecordingPolicy(env.action_space), n_steps=3)
        for t, info in enumerate(record.infos):
            np.testing.assert_array_equal(info["action"], record.actions[t])

    def test_dict_and_tuple_spaces(self):
        """Nested spaces of a vector env give maps/lists of (n_steps, n_envs, ...) arrays."""
        env = SyncVectorEnv([NestedEnv, NestedEnv])
        record = RolloutGenerator(env, record_next_observations=True).rollout(
            RecordingPolicy(env.action_space), n_steps=6)
        assert record.observations["pos"].shape == (6, 2, 2)
        assert [part.shape for part in record.observations["parts"]] == [(6, 2), (6, 2, 3)]
        assert [part.shape for part in record.next_observations["parts"]] == [(6, 2), (6, 2, 3)]
        assert record.actions["force"].shape == (6, 2, 2)
        assert not record.valid[4].any()  # every sub-env resets after its 4th step

    @pytest.mark.parametrize("mode", list(AutoresetMode))
    @pytest.mark.parametrize("kind", sorted(sample_spaces()))
    def test_every_space_kind_in_every_autoreset_mode(self, kind, mode):
        """Sub-envs with episodes of 3 and 2 steps and any space (Text and nested ones
        included) step as the autoreset mode says: NEXT_STEP spends a step on each reset."""
        env = SyncVectorEnv([lambda: SpaceEnv(kind, 3), lambda: SpaceEnv(kind, 2)],
                            autoreset_mode=mode)
        record = RolloutGenerator(env, record_next_observations=True).rollout(
            RecordingPolicy(env.action_space), n_steps=5)
        expected = ([[1, 2, 3, 0, 1], [1, 2, 0, 1, 2]] if mode is AutoresetMode.NEXT_STEP
                    else [[1, 2, 3, 1, 2], [1, 2, 1, 2, 1]])
        assert record.rewards.T.tolist() == expected
        assert record.valid.T.tolist() == [[r > 0 for r in rewards] for rewards in expected]


TICKS = [StatSpec("tick", "value"), StatSpec("policy", "value", episode="mean"),
         StatSpec("reset", "value")]


class TestStatistics:
    def test_epoch_stats_of_ended_episodes(self):
        """Three ended episodes of 3 steps (rewards 1, 2, 3) are the epoch; the running one
        is not."""
        env = CounterEnv(3)
        generator = RolloutGenerator(env)
        generator.rollout(RecordingPolicy(env.action_space), n_steps=10)
        stats = generator.epoch_stats()
        assert stats["episode_count"] == 3 and stats["aborted_episode_count"] == 0
        assert stats["episode_return"]["mean"] == 6.0 and stats["episode_length"]["max"] == 3
        assert generator.get_stats_value("episode_return", "epoch", "mean") == 6.0
        assert generator.get_stats_value("episode_count") == 3

    def test_custom_events_of_env_and_policy(self):
        """record_event() from env step, env reset and policy reaches the generator's stats."""
        env = CounterEnv(3)
        generator = RolloutGenerator(env, custom_stats=TICKS)
        generator.rollout(TalkingPolicy(env.action_space), n_steps=7)
        assert generator.get_stats_value("tick.value", "episode", episode=1) == 6
        assert generator.get_stats_value("tick.value") == 6.0
        assert generator.get_stats_value("policy.value") == 2.0
        assert generator.get_stats_value("reset.value", "episode") == {0: 1, 1: 1}

    def test_step_and_episode_stats_in_the_record(self):
        """step_stats hold each step's custom values; episode_stats the episode's values
        where an episode ended, None elsewhere."""
        env = CounterEnv(3)
        generator = RolloutGenerator(env, record_step_stats=True, record_episode_stats=True,
                                     custom_stats=TICKS[:1])
        record = generator.rollout(RecordingPolicy(env.action_space), n_steps=4)
        assert record.step_stats == [{"tick.value": t} for t in (1, 2, 3, 1)]
        assert record.episode_stats == [None, None, {"episode_return": 6.0, "episode_length": 3,
                                                     "tick.value": 6}, None]

    def test_stats_columns_only_when_asked(self):
        """Without record_step_stats / record_episode_stats the record has None there."""
        env = CounterEnv(2)
        record = RolloutGenerator(env, custom_stats=TICKS).rollout(
            RecordingPolicy(env.action_space), n_steps=3)
        assert record.step_stats is None and record.episode_stats is None

    def test_vector_env_episodes_count_per_sub_env(self):
        """Each sub-env's ended episode counts; episode_stats are per sub-env entry."""
        env = counter_vector([2, 3], AutoresetMode.NEXT_STEP)
        generator = RolloutGenerator(env, record_step_stats=True, record_episode_stats=True)
        record = generator.rollout(RecordingPolicy(env.action_space), n_steps=4)
        assert generator.get_stats_value("episode_count") == 2
        assert generator.get_stats_value("episode_length", "epoch", "mean") == 2.5
        assert record.episode_stats[1] == [{"episode_return": 3.0, "episode_length": 2}, None]
        assert record.episode_stats[2] == [None, {"episode_return": 6.0, "episode_length": 3}]
        assert record.step_stats[2] == [None, {}]  # sub-env 0 resets: no step

    def test_bad_custom_stats_are_refused(self):
        """A custom stat spec with an unknown reducer is a ConfigError naming it."""
        with pytest.raises(ConfigError, match="unknown epoch reducer 'avg'"):
            RolloutGenerator(CounterEnv(), custom_stats=[{"event": "x", "field": "v",
                                                          "epoch": "avg"}])
