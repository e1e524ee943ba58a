"""Hypothesis strategies for events and the values they carry."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eventroll import events

DTYPES = st.sampled_from(["<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8",
                          "<f2", "<f4", "<f8", "|b1", "<c8", "<c16", ">i4", ">f8", "|S5", "<U3"])

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
small_ints = st.integers(min_value=0, max_value=2**31)
floats = st.floats(allow_nan=False)
text = st.text(max_size=20)


@st.composite
def arrays(draw: st.DrawFn, max_dims: int = 3) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=4))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def scalars(draw: st.DrawFn) -> np.generic:
    """numpy scalars of numeric and bool dtypes (str_ and bytes_ travel as str and bytes)."""
    array = draw(arrays(max_dims=0))
    if array.dtype.kind in "SU":
        array = np.zeros((), "<i4")
    return array[()]


leaves = st.one_of(st.none(), st.booleans(), ints, floats, text, st.binary(max_size=16),
                   arrays(), scalars())
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)), max_leaves=12)
maps = st.dictionaries(text, values, max_size=4)
optional_int = st.one_of(st.none(), small_ints)


def _envelope() -> dict:
    return dict(worker=st.integers(min_value=-2, max_value=64), wseq=small_ints,
                time=st.floats(min_value=0, max_value=2e9))


@st.composite
def step_batches(draw: st.DrawFn) -> events.StepBatch:
    n = draw(st.integers(min_value=1, max_value=8))
    obs_shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    column = lambda dtype, shape=(): hnp.arrays(dtype, (n, *shape))  # noqa: E731
    return events.StepBatch(
        episode=draw(small_ints), t0=draw(small_ints), n=n,
        action=draw(st.one_of(column(np.int64), st.fixed_dictionaries(
            {"move": column(np.float32, (2,)), "fire": column(np.int8)}))),
        observation=draw(st.one_of(column(np.float32, obs_shape),
                                   st.lists(column(np.float64), min_size=1, max_size=3))),
        reward=draw(column(np.float64)), terminated=draw(column(bool)),
        truncated=draw(column(bool)),
        info=draw(st.one_of(st.none(), st.lists(maps, min_size=n, max_size=n))),
        **draw(st.fixed_dictionaries(_envelope())))


def _kind(cls: type, **fields: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(cls, **fields, **_envelope())


every_event = st.one_of(
    _kind(events.RunStart, run_id=text, runner=text, n_episodes=small_ints, n_workers=small_ints,
          env=text, env_kwargs=maps, observation_space=maps, action_space=maps, config=maps,
          versions=st.dictionaries(text, text, max_size=3),
          env_seeds=st.lists(small_ints, max_size=5), agent_seeds=st.lists(small_ints, max_size=5)),
    _kind(events.RunEnd, run_id=text, status=text, episodes=small_ints, aborted=small_ints,
          steps=small_ints, wall_time=floats, errors=st.lists(text, max_size=3)),
    _kind(events.WorkerStart, pid=small_ints),
    _kind(events.WorkerEnd, pid=small_ints, episodes=small_ints, last_wseq=small_ints),
    _kind(events.WorkerError, pid=small_ints, episode=optional_int, error=text, traceback=text),
    _kind(events.EpisodeStart, episode=small_ints, env_seed=small_ints, agent_seed=small_ints,
          observation=st.one_of(arrays(), st.dictionaries(text, arrays(), max_size=3)), info=maps),
    step_batches(),
    _kind(events.EpisodeEnd, episode=small_ints, length=small_ints, return_=floats,
          terminated=st.booleans(), truncated=st.booleans(), aborted=st.booleans(),
          wall_time=floats),
    _kind(events.Custom, name=text, episode=optional_int, t=optional_int, fields=maps),
)
