"""The flat HDF5 layout: one resizable dataset per field, episodes by index arrays.

Steps of all episodes are rows of the same datasets, episode after episode in
the order they ended; ``episodes/start`` and ``episodes/length`` say which rows
belong to which episode. Episodes are appended in blocks (never a step at a
time) and the file is in SWMR mode, so readers see it grow. The format is
described in ``schemas/trajectories.md``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import h5py
import numpy as np
from gymnasium import spaces

from eventroll import codec
from eventroll.episodes import Episode
from eventroll.errors import ConfigError, EventError, one_line
from eventroll.events import STATUS_CODES, STATUSES, Episodes, end_status, fits_int, is_int
from eventroll.files import DropBehind
from eventroll.spaces import describe_space, space_from_description
from eventroll.trajectories.record import PlainEpisode, Trajectory, episode_of, rows, trajectory_of

FORMAT = "eventroll-trajectories"
FORMAT_VERSION = 1
FILE_NAME = "trajectories.h5"
BLOCK_ROWS = 65536
BLOCK_BYTES = 4 << 20  # a block is also written once its step rows hold about this much
WINDOW_BYTES = 4 << 20  # step rows a TrajectoryFile reads at once when iterating (16 MiB:
# a 1M-step CartPole file read in the same time, 90 MiB at peak against 68)
FLUSH_INTERVAL = 0.5  # s: a block costs 1.5 to 2 ms of HDF5 calls however small, so at
# full speed blocks of 0.1 s (5,000 CartPole steps) cost 0.3 s a million steps; the event
# log, written as each message arrives, is the run's prompt record
NO_SEED = -1
CHUNK_BYTES = 1 << 14  # a chunk takes its whole size on disk, however few rows it holds: at
# 512 KiB the 15 datasets of a 100-episode CartPole run took 5.3 MB (2,392 bytes a step),
# at 16 KiB 314 KB; recording and reading a 1M-step file took the same time (rows of more
# than 256 bytes, images, still get chunks of 64 rows)
# no chunk cache: rows are only appended, in whole rows, and HDF5 writes the rows of an
# uncached, unfiltered chunk straight to the file, where a cache first copies them (16 %
# of the recorder's CPU for 84x84 images; CartPole the same). HDF5's default cache, 8 MiB
# a dataset filled slowly by the small columns, grew a recorder by 90 MiB over 1e7 steps
CHUNK_CACHE = dict(rdcc_nbytes=0)

# per-episode index arrays: name -> dtype
INDEX = {"index": "<i8", "start": "<i8", "length": "<i8", "env_seed": "<i8", "agent_seed": "<i8",
         "worker": "<i4", "status": "u1", "return": "<f8", "reset": "b1"}
# what the writer keeps of each episode until its block is written, in this order
INDEX_ROW = ("index", "worker", "env_seed", "agent_seed", "status", "return", "length", "reset")
# step fields that hold bytes per row (msgpack), as a heap of bytes and row end offsets
HEAPS = ("infos", "logits")
FINALS = "episodes/final_observations"


def heap_names(options: dict[str, bool]) -> list[str]:
    """The heaps a file with these options holds (the reset infos' with ``infos``)."""
    names = [name for name in HEAPS if options[name]]
    return names + (["episodes/reset_infos"] if options["infos"] else [])


def step_datasets(observation_space: spaces.Space, action_space: spaces.Space,
                  options: dict[str, bool]) -> list[tuple[str, tuple[int, ...], Any]]:
    """The step datasets of a flat file with these spaces and options, in the order the
    writer creates them: (path, row shape, dtype)."""
    observed = ["observations", FINALS] + (
        ["next_observations"] if options["next_observations"] else [])
    observation_leaves = space_leaves(observation_space)
    datasets = [(field + suffix, shape, dtype) for field in observed
                for suffix, _, shape, dtype in observation_leaves]
    datasets += [("actions" + suffix, shape, dtype)
                 for suffix, _, shape, dtype in space_leaves(action_space)]
    datasets += [("rewards", (), "<f8"), ("terminations", (), "b1"), ("truncations", (), "b1")]
    for name in heap_names(options):
        datasets += [(f"{name}/data", (), "u1"), (f"{name}/end", (), "<i8")]
    return datasets


# -- spaces as datasets ------------------------------------------------------------------
Leaf = tuple[str, tuple, tuple[int, ...], Any]  # path suffix, keys into a value, row shape, dtype


def space_leaves(space: spaces.Space, path: str = "") -> list[Leaf]:
    """Every array a space's values hold, in a fixed order: (dataset path suffix, key path
    into a value, row shape, stored dtype); a field ``observations`` stores its leaf with
    suffix ``/pos`` as the dataset ``observations/pos``."""
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        return [(leaf_path, (key, *keys), shape, dtype)
                for key, sub in items
                for leaf_path, keys, shape, dtype in space_leaves(sub, f"{path}/{key}")]
    if isinstance(space, spaces.Text):
        return [(path, (), (), h5py.string_dtype("utf-8"))]
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return [(path, (), tuple(space.shape), stored_dtype(space))]
    raise ConfigError(f"trajectory recording does not support {type(space).__name__} spaces; "
                      "it records Box, Discrete, MultiDiscrete, MultiBinary, Text, Dict and Tuple")


def stored_dtype(space: spaces.Space) -> np.dtype:
    """The dtype a leaf is stored as: the space's own, but the smallest integer type that
    holds every value for Discrete and MultiDiscrete (readers get the space's dtype back)."""
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        low = int(np.min(space.start))
        high = int(np.max(np.asarray(space.start) + (space.n if isinstance(space, spaces.Discrete)
                                                      else space.nvec) - 1))
        return np.result_type(np.min_scalar_type(low), np.min_scalar_type(high))
    return np.dtype(space.dtype)


def pick(value: Any, keys: tuple) -> Any:
    """The part of a (nested) value at ``keys``, as :func:`space_leaves` gives them."""
    for key in keys:
        value = value[key]
    return value


def read_value(space: spaces.Space, group: h5py.Group, path: str, index: Any) -> Any:
    """Rows ``index`` of a (nested) field, shaped as the space's values."""
    if isinstance(space, spaces.Dict):
        return {key: read_value(sub, group, f"{path}/{key}", index)
                for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return [read_value(sub, group, f"{path}/{i}", index) for i, sub in enumerate(space.spaces)]
    dataset = group[path]
    if isinstance(space, spaces.Text):
        return dataset.asstr()[index]
    return dataset[index].astype(space.dtype, copy=False)


def _chunk_rows(shape: tuple[int, ...], dtype: Any) -> int:
    row_bytes = int(np.prod(shape, dtype=np.int64)) * max(np.dtype(dtype).itemsize, 1)
    return int(max(64, min(65536, CHUNK_BYTES // max(row_bytes, 1))))


class Column:
    """A resizable dataset that grows by appended rows.

    Rows of plain dtypes go through h5py's low-level calls (extent, hyperslab,
    write), in about half the time of its high-level resize and slice assignment;
    strings take the high-level way. The row count is kept here, not asked of
    the file."""

    def __init__(self, file: h5py.File, path: str, shape: tuple[int, ...], dtype: Any) -> None:
        self.dataset = file.create_dataset(path, shape=(0, *shape), maxshape=(None, *shape),
                                           dtype=dtype, chunks=(_chunk_rows(shape, dtype), *shape))
        self.rows = 0
        self._shape = shape
        self._dtype = self.dataset.dtype
        self._plain = self._dtype.kind not in "OSU" and h5py.check_dtype(vlen=self._dtype) is None
        self._origin = (0,) * len(shape)

    def append(self, data: Any) -> None:
        n = len(data)
        if not n:
            return
        end = self.rows + n
        if self._plain:
            data = np.ascontiguousarray(data, dtype=self._dtype)
            dataset_id = self.dataset.id
            dataset_id.set_extent((end, *self._shape))
            file_space = dataset_id.get_space()
            file_space.select_hyperslab((self.rows, *self._origin), data.shape)
            dataset_id.write(h5py.h5s.create_simple(data.shape), file_space, data)
        else:
            self.dataset.resize(end, axis=0)
            self.dataset[self.rows:] = data
        self.rows = end

    def flush(self) -> None:
        self.dataset.flush()


def _blank(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A stand-in row for an episode without observations."""
    if h5py.check_string_dtype(np.dtype(dtype)) is not None:
        return np.full((1, *shape), "")
    return np.zeros((1, *shape), dtype=dtype)


def _index_problem(index: int, worker: int, env_seed: int | None, agent_seed: int | None,
                  length: int) -> str | None:
    """What of an episode's index values the trajectory files cannot hold, or None: they
    store the worker id as an int32, the index, seeds and length as int64s (a seed of
    None as :data:`NO_SEED`, so a negative seed would read back as another). msgpack
    carries ints up to 2**64."""
    if not fits_int(worker, 32):
        return f"its worker id {worker} does not fit the int32 the file stores it in"
    for name, seed in (("env seed", env_seed), ("agent seed", agent_seed)):
        if seed is not None and seed < 0:
            return f"its {name} {seed} is negative (seeds are >= 0; the file stores none as -1)"
    for name, value in (("index", index), ("env seed", env_seed), ("agent seed", agent_seed),
                        ("length", length)):
        if value is not None and not fits_int(value):
            return f"its {name} {value} does not fit the int64 the file stores it in"
    return None


def _fit_the_index(packed: Episodes) -> bool:
    """Whether the index values of packed episodes all fit the file, checked at once: seeds
    present and >= 0, every value an int64, the worker an int32 (False: some may not, and
    :func:`_index_problem` says which)."""
    if not fits_int(packed.worker, 32) or None in packed.env_seed or None in packed.agent_seed:
        return False
    try:
        values = np.array([packed.episode, packed.env_seed, packed.agent_seed, packed.length],
                          np.int64)
    except OverflowError:
        return False
    return bool((values[1:3] >= 0).all())


def _heap_rows(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """msgpack bytes of each value, as one byte array and the rows' lengths."""
    blobs = [codec.encode(value) for value in values]
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    return data, np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))


_VIEWS = frozenset({memoryview})


class Rows:
    """The rows of one dataset, taken from many arrays and joined once per block.

    An array that came undecoded (:class:`~eventroll.codec.RawArray`) in the dtype
    the first one had is taken as a view of its bytes, checked against the shape it must have
    without decoding it: a block's rows are then one ``join``. Others are decoded,
    checked and kept as arrays.
    """

    def __init__(self, name: str, row_shape: tuple[int, ...]) -> None:
        self.name = name
        self.row_shape = row_shape
        self.wire: str | None = None  # the dtype (its str) of the arrays taken as views
        self.parts: list[memoryview | np.ndarray] = []
        # by n: the head of an array of n rows (codec.array_head), its whole size, the head's
        self._heads: dict[int | None, tuple[bytes, int, int]] = {}

    def part(self, value: Any, n: int | None) -> memoryview | np.ndarray:
        """``value`` checked to hold ``n`` rows (None: to be one row itself)."""
        if type(value) is codec.RawArray:
            head = self._heads.get(n)
            payload = value.payload
            if head is not None and len(payload) == head[1] and payload.startswith(head[0]):
                return memoryview(payload)[head[2]:]  # the data, not copied
            value = value.decode()
            if self.wire is None:
                self.wire = value.dtype.str
        shape = self.row_shape if n is None else (n, *self.row_shape)
        if self.wire is not None and n not in self._heads and len(self._heads) < 4096:
            head, size = codec.array_head(self.wire, shape)
            self._heads[n] = head, size, len(head)
        array = np.asarray(value)
        if array.shape != shape:
            raise EventError(f"{self.name} holds an array of shape {array.shape}, "
                             f"expected {shape}")
        return array

    def array(self, part: memoryview | np.ndarray) -> np.ndarray:
        """A part (from :meth:`part`) as an array of rows."""
        if type(part) is memoryview:
            return np.frombuffer(part, self.wire).reshape(-1, *self.row_shape)
        return part

    @staticmethod
    def split_last(part: memoryview | np.ndarray, n: int) -> tuple[memoryview | np.ndarray,
                                                                    memoryview | np.ndarray]:
        """A part of ``n`` rows (from :meth:`part`) as its first ``n - 1`` rows and its last."""
        if type(part) is memoryview:
            cut = len(part) // n * (n - 1)
            return part[:cut], part[cut:]
        return part[:-1], part[-1:]

    def take(self, parts: list[memoryview | np.ndarray] | None = None) -> np.ndarray:
        """The rows of ``parts`` (default: :attr:`parts`), parts this object checked, joined
        (strings as objects for h5py); the list is emptied."""
        parts = self.parts if parts is None else parts
        taken, wire, shape = parts[:], self.wire, self.row_shape
        parts.clear()
        if _VIEWS.issuperset(map(type, taken)):  # all views (a generator took 5 % of replay)
            data = np.frombuffer(b"".join(taken), wire).reshape(-1, *shape)
        else:
            data = np.concatenate([
                (np.frombuffer(part, wire) if type(part) is memoryview else part).reshape(-1, *shape)
                for part in taken])
        return data.astype(object) if data.dtype.kind == "U" else data


# -- writing ---------------------------------------------------------------------------
def row_bytes(observation_space: spaces.Space, action_space: spaces.Space) -> int:
    """About how many bytes one step row holds: its observation and action leaves (strings
    counted at 64 bytes), reward and flags."""
    leaves = space_leaves(observation_space) + space_leaves(action_space)
    return 10 + sum(int(np.prod(shape, dtype=np.int64)) * (np.dtype(dtype).itemsize or 64)
                    for _, _, shape, dtype in leaves)


class BlockWriter:
    """Buffers whole episodes and writes them as blocks: once ``block_rows`` steps (or
    ``max_block_episodes`` episodes, or about ``BLOCK_BYTES`` of step rows of
    ``row_bytes`` each: memory stays bounded with large observations) are buffered,
    ``flush_interval`` seconds after the oldest buffered episode ended (:meth:`tick`),
    and at close. Subclasses write a block in :meth:`_write_block`. What is buffered is
    a :class:`Trajectory` an episode (``add_episode`` makes one), unless a subclass takes
    episodes as they came (:class:`FlatWriter`)."""

    max_block_episodes: float = float("inf")

    def __init__(self, block_rows: int, flush_interval: float, row_bytes: int = 1) -> None:
        self.block_rows = max(1, min(block_rows, BLOCK_BYTES // max(row_bytes, 1)))
        self.flush_interval = flush_interval
        self._buffer: list[Any] = []
        self._buffered_rows = 0
        self._oldest = 0.0

    def add(self, trajectory: Trajectory) -> None:
        """Buffer a whole episode; :class:`EventError` (and nothing taken) if an index value
        of it does not fit the file (:func:`_index_problem`)."""
        problem = _index_problem(trajectory.index, trajectory.worker, trajectory.env_seed,
                                trajectory.agent_seed, trajectory.length)
        if problem is not None:
            raise EventError(f"episode {trajectory.index}: {problem}")
        self._buffered(trajectory, trajectory.length)

    def add_episode(self, episode: Episode) -> None:
        """Buffer an ended episode (``end`` set), as it came from its events."""
        self.add(trajectory_of(episode))

    def _buffered(self, episode: Any, length: int) -> None:
        """Buffer what a subclass writes of an episode of ``length`` steps."""
        self._buffered_all([episode], length)

    def _buffered_all(self, episodes: list[Any], length: int) -> None:
        """Buffer what a subclass writes of episodes of ``length`` steps in all: a block
        written holds all of them or none."""
        if not self._buffer:
            self._oldest = time.monotonic()
        self._buffer += episodes
        self._buffered_rows += length
        if (self._buffered_rows >= self.block_rows
                or len(self._buffer) >= self.max_block_episodes):
            self.flush()

    def tick(self) -> None:
        if self._buffer and time.monotonic() - self._oldest >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write every buffered episode."""
        if self._buffer:
            block, self._buffer, self._buffered_rows = self._buffer, [], 0
            self._write_block(block)

    def _write_block(self, block: list[Any]) -> None:
        raise NotImplementedError


class FlatWriter(BlockWriter):
    """Appends episodes to a flat HDF5 file, in blocks.

    ``add`` (a :class:`Trajectory`) and ``add_episode`` (an ended :class:`Episode`,
    as its events brought it) check an episode's arrays against the spaces and take
    its rows (:class:`Rows`: undecoded arrays as their bytes); they are joined,
    written and flushed together once ``block_rows`` steps are buffered or
    ``flush_interval`` seconds after the oldest buffered episode ended
    (:meth:`tick`), and at :meth:`close`. A flush holds whole episodes only: step
    rows are written and flushed before the index rows that point at them.
    """

    def __init__(self, path: str, observation_space: spaces.Space, action_space: spaces.Space, *,
                 run_id: str = "", env: str = "", next_observations: bool = False,
                 infos: bool = False, logits: bool = False, block_rows: int = BLOCK_ROWS,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        super().__init__(block_rows, flush_interval, row_bytes(observation_space, action_space))
        self.path = path
        self.observation_space, self.action_space = observation_space, action_space
        self.options = {"next_observations": next_observations, "infos": infos, "logits": logits}
        self._observation_leaves = space_leaves(observation_space)
        self._action_leaves = space_leaves(action_space)
        self._file = h5py.File(path, "w-", libver="latest",  # never overwrite a recording
                               **CHUNK_CACHE)
        self._datasets: dict[str, Column] = {}  # step data, written before the index
        self._index: dict[str, Column] = {}
        self._create_layout(run_id, env)
        self._file.swmr_mode = True
        self._drop_behind = DropBehind(self._file.id.get_vfd_handle())
        self.episodes = self.steps = 0
        leaves = self._observation_leaves
        # per observation leaf: the rows before each step (their parts: the reset observation
        # and each batch's observations but the last, joined as they come), the episodes'
        # final observations, and (next_observations) each batch's observations
        self._observations = [Rows("observation" + suffix, shape) for suffix, _, shape, _ in leaves]
        self._finals: list[list[memoryview | np.ndarray]] = [[] for _ in leaves]
        self._nexts: list[list[memoryview | np.ndarray]] = [[] for _ in leaves]
        self._actions = [Rows("action" + suffix, shape) for suffix, _, shape, _ in self._action_leaves]
        self._flags = [Rows(name, ()) for name in ("reward", "terminated", "truncated")]
        self._step_rows = self._actions + self._flags  # a batch's columns but observations, in order
        self._action_keys = [keys for _, keys, _, _ in self._action_leaves]
        self._heap_values: dict[str, list[Any]] = {name: [] for name in heap_names(self.options)}

    def _create_layout(self, run_id: str, env: str) -> None:
        file = self._file
        file.attrs.update({
            "format": FORMAT, "version": FORMAT_VERSION, "run_id": run_id, "env": env,
            "created": datetime.now(timezone.utc).isoformat(),
            "observation_space": np.void(codec.encode(describe_space(self.observation_space))),
            "action_space": np.void(codec.encode(describe_space(self.action_space))),
            **{f"records_{name}": flag for name, flag in self.options.items()}})
        for path, shape, dtype in step_datasets(self.observation_space, self.action_space,
                                                self.options):
            self._datasets[path] = Column(file, path, shape, dtype)
        for name, dtype in INDEX.items():
            self._index[name] = Column(file, f"episodes/{name}", (), dtype)
        self._index["status"].dataset.attrs["codes"] = ",".join(STATUSES)

    # -- taking episodes --------------------------------------------------------------
    def add(self, trajectory: Trajectory) -> None:
        self.add_episode(episode_of(trajectory))

    def add_episode(self, episode: Episode) -> None:
        """Buffer an ended episode; :class:`EventError` (and nothing taken) if an array
        of it does not fit the spaces."""
        end = episode.end
        self._take(episode.reset_observation, episode.reset_info, episode.batches, getattr,
                   (episode.index, episode.worker, episode.env_seed, episode.agent_seed,
                    STATUS_CODES[end.status], float(end.return_), episode.length))

    def add_plain(self, episode: PlainEpisode) -> None:
        """Buffer an ended episode as its plain records brought it (maps that
        :func:`eventroll.events.is_plain` took); as :meth:`add_episode` does its typed
        events, with the same result."""
        start, end = episode.start, episode.end
        status = end_status(end["terminated"], end["truncated"], end["aborted"])
        self._take(start["observation"], start["info"], episode.batches, dict.__getitem__,
                   (start["episode"], start["worker"], start["env_seed"], start["agent_seed"],
                    STATUS_CODES[status], end["return"], episode.length))

    def add_packed(self, packed: Episodes) -> None:
        """Buffer whole episodes as a packed record brought them (:mod:`eventroll.packing`,
        checked there), their arrays undecoded; as :meth:`add_plain` does each of them,
        with the same result. :class:`EventError` (and nothing taken) if an array or index
        value does not fit."""
        lengths = np.asarray(packed.length, np.int64)
        ends = np.cumsum(lengths)
        statuses = [STATUS_CODES[end_status(terminated, truncated, False)]
                    for terminated, truncated in zip(packed.end_terminated, packed.end_truncated)]
        index_rows = list(zip(packed.episode, [packed.worker] * packed.n, packed.env_seed,
                              packed.agent_seed, statuses, packed.return_, packed.length,
                              [True] * packed.n))  # as INDEX_ROW, the reset observed
        if not _fit_the_index(packed):  # then say which does not, and how
            for index, worker, env_seed, agent_seed, _, _, length, _ in index_rows:
                problem = _index_problem(index, worker, env_seed, agent_seed, length)
                if problem is not None:
                    raise EventError(f"episode {index}: {problem}")
        try:
            taken = self._packed_rows(packed, lengths, ends)
        except (KeyError, IndexError, TypeError, ValueError) as exc:  # codec and event errors too
            raise EventError(f"episodes {packed.episode[0]} to {packed.episode[-1]} "
                             f"(packed): {exc}") from None
        for parts, part in taken:  # all or nothing: the block stays whole episodes
            parts.append(part)
        steps, heaps = int(ends[-1]), self._heap_values
        if "infos" in heaps:
            heaps["infos"] += [{}] * steps
            heaps["episodes/reset_infos"] += [{}] * packed.n
        if "logits" in heaps:
            heaps["logits"] += [None] * steps
        self._buffered_all(index_rows, steps)

    def _packed_rows(self, packed: Episodes, lengths: np.ndarray,
                     ends: np.ndarray) -> list[tuple[list, memoryview | np.ndarray]]:
        """Each array of packed episodes checked, with the list of parts it goes to, as
        :meth:`_rows_of` gives them for the episodes one by one: the rows before the
        steps are each episode's reset observation, then its observations but the last."""
        steps, n = int(ends[-1]), packed.n
        taken: list[tuple[list, memoryview | np.ndarray]] = []
        take = taken.append
        for (_, keys, _, _), rows_, finals, nexts in zip(
                self._observation_leaves, self._observations, self._finals, self._nexts):
            after = rows_.part(pick(packed.observation, keys), steps)
            reset = rows_.array(rows_.part(pick(packed.reset_observation, keys), n))
            observed = rows_.array(after)
            if reset.dtype != observed.dtype:
                raise ValueError(f"its reset observations are {reset.dtype}, its steps' "
                                 f"{observed.dtype}")
            before = np.empty_like(observed)
            before[1:] = observed[:-1]
            before[ends - lengths] = reset
            if self.options["next_observations"]:
                take((nexts, after))
            take((rows_.parts, before))
            take((finals, observed[ends - 1]))
        columns = [pick(packed.action, keys) for keys in self._action_keys]
        columns += (packed.reward, packed.terminated, packed.truncated)
        for rows_, column in zip(self._step_rows, columns):
            take((rows_.parts, rows_.part(column, steps)))
        return taken

    def _take(self, reset: Any, reset_info: dict | None, batches: list, get: Any,
              row: tuple) -> None:
        """Check and buffer an episode: its reset observation and info, its batches, whose
        fields ``get(batch, name)`` reads (step.batch events or their maps), and its index
        row (:data:`INDEX_ROW` but ``reset``, which is added here)."""
        index, worker, env_seed, agent_seed, _, _, length = row
        problem = _index_problem(index, worker, env_seed, agent_seed, length)
        if problem is not None:
            raise EventError(f"episode {index}: {problem}")
        try:
            taken = self._rows_of(reset, batches, get)
            heaps = self._heap_rows_of(reset_info, batches, get) if self._heap_values else {}
        except (KeyError, IndexError, TypeError, ValueError) as exc:  # codec and event errors too
            raise EventError(f"episode {index}: {exc}") from None
        for parts, part in taken:  # all or nothing: the block stays whole episodes
            parts.append(part)
        for name, values in heaps.items():
            self._heap_values[name] += values
        self._buffered(row + (reset is not None,), length)

    def _rows_of(self, reset: Any, batches: list,
                 get: Any) -> list[tuple[list, memoryview | np.ndarray]]:
        """Each array of an episode checked, with the list of parts it goes to. The rows
        before the steps are the reset observation and each step's observation but the last,
        which is the final one: taken in that order, they need no shifting."""
        taken: list[tuple[list, memoryview | np.ndarray]] = []
        take = taken.append
        next_observations = self.options["next_observations"]
        for (_, keys, shape, dtype), rows_, finals, nexts in zip(
                self._observation_leaves, self._observations, self._finals, self._nexts):
            parts, part = rows_.parts, rows_.part
            before = _blank(shape, dtype) if reset is None else part(pick(reset, keys), None)
            for batch in batches:
                n = get(batch, "n")
                observed = part(pick(get(batch, "observation"), keys), n)
                if next_observations:
                    take((nexts, observed))
                rest, last = rows_.split_last(observed, n)
                take((parts, before))
                take((parts, rest))
                before = last
            take((finals, before))
        for batch in batches:
            n, action = get(batch, "n"), get(batch, "action")
            columns = [pick(action, keys) for keys in self._action_keys]
            columns += (get(batch, "reward"), get(batch, "terminated"), get(batch, "truncated"))
            for rows_, column in zip(self._step_rows, columns):
                take((rows_.parts, rows_.part(column, n)))
        return taken

    def _heap_rows_of(self, reset_info: dict | None, batches: list,
                      get: Any) -> dict[str, list[Any]]:
        """The rows an episode adds to each heap (infos, logits, reset infos) asked for."""
        heaps: dict[str, list[Any]] = {name: [] for name in self._heap_values}
        for batch in batches:
            n = get(batch, "n")
            if self.options["infos"]:
                heaps["infos"] += get(batch, "info") or [{}] * n
            if self.options["logits"]:
                logits = codec.decoded(get(batch, "logits"))
                heaps["logits"] += ([None] * n if logits is None else
                                    [rows(logits, t) for t in range(n)])
        if self.options["infos"]:
            heaps["episodes/reset_infos"].append(reset_info or {})
        return heaps

    # -- writing -----------------------------------------------------------------------
    def _write_block(self, block: list[tuple]) -> None:
        """Write a block (an :data:`INDEX_ROW` an episode, as :meth:`_take` buffers them)
        and flush the file: step rows first, then the index rows."""
        first_row = self._datasets["rewards"].rows
        index = dict(zip(INDEX_ROW, zip(*block)))
        lengths = np.fromiter(index["length"], np.int64, len(block))
        self._write_steps()
        self._write_observations()
        for name, values in self._heap_values.items():
            self._append_heap(name, values)
            values.clear()
        for column in self._datasets.values():
            column.flush()
        self._write_index(index, lengths, first_row)
        self._file.flush()
        self._drop_behind.wrote(self._file.id.get_filesize())
        self.episodes += len(block)
        self.steps += int(lengths.sum())

    def _write_steps(self) -> None:
        for (suffix, _, _, _), rows_ in zip(self._action_leaves, self._actions):
            self._append_rows("actions" + suffix, rows_)
        for name, rows_ in zip(("rewards", "terminations", "truncations"), self._flags):
            self._append_rows(name, rows_)

    def _append_rows(self, name: str, rows_: Rows) -> None:
        if rows_.parts:
            self._datasets[name].append(rows_.take())

    def _write_observations(self) -> None:
        """Step observations, next observations and final observations of a block, leaf by
        leaf."""
        for (suffix, _, _, _), rows_, finals, nexts in zip(
                self._observation_leaves, self._observations, self._finals, self._nexts):
            self._append_rows("observations" + suffix, rows_)
            if nexts:
                self._datasets["next_observations" + suffix].append(rows_.take(nexts))
            self._datasets[FINALS + suffix].append(rows_.take(finals))

    def _append_heap(self, name: str, values: list[Any]) -> None:
        data, lengths = _heap_rows(values)
        self._datasets[f"{name}/end"].append(self._datasets[f"{name}/data"].rows + np.cumsum(lengths))
        self._datasets[f"{name}/data"].append(data)

    def _write_index(self, index: dict[str, tuple], lengths: np.ndarray,
                     first_row: int) -> None:
        """The index rows of a block, by :data:`INDEX_ROW` field."""
        n = len(lengths)
        seeds = {name: np.fromiter((NO_SEED if seed is None else seed for seed in index[name]),
                                   np.int64, n) for name in ("env_seed", "agent_seed")}
        columns = {
            "index": np.fromiter(index["index"], np.int64, n),
            "start": first_row + np.cumsum(lengths) - lengths, "length": lengths, **seeds,
            "worker": np.fromiter(index["worker"], np.int32, n),
            "status": np.fromiter(index["status"], np.uint8, n),
            "return": np.fromiter(index["return"], np.float64, n),
            "reset": np.fromiter(index["reset"], bool, n)}
        for name, values in columns.items():
            self._index[name].append(values)

    def close(self) -> dict[str, Any]:
        try:
            self.flush()
        finally:  # a file left open after a failed write crashes h5py when the process exits
            with _unraisable_ignored():  # its datasets then fail to flush as they are freed
                self._datasets.clear()
                self._index.clear()
                self._file.close()
        return {"path": self.path, "episodes": self.episodes, "steps": self.steps}


def append_file(path: str, part: str) -> None:
    """Append the episodes of the flat file ``part`` to those of ``path`` (written by
    writers with the same spaces and options: a replay in parts), as one writer taking them
    after its own would have written them: step rows first, in windows of about
    ``WINDOW_BYTES``, then the index rows, their step and heap offsets moved on."""
    with h5py.File(path, "r+", libver="latest", **CHUNK_CACHE) as target, \
            h5py.File(part, "r") as source:
        names: list[str] = []
        source.visititems(lambda name, item: names.append(name)
                          if isinstance(item, h5py.Dataset) else None)
        index = {f"episodes/{name}" for name in INDEX}
        offsets = {"episodes/start": len(target["rewards"])}  # rows before the part's
        for name in names:
            if name.endswith("/end"):  # a heap's row ends: bytes before the part's
                offsets[name] = len(target[name[:-len("end")] + "data"])
        for name in sorted(names, key=lambda name: name in index):  # the index last
            _append_dataset(target[name], source[name], offsets.get(name, 0))
            target.flush()


def _append_dataset(target: h5py.Dataset, source: h5py.Dataset, offset: int) -> None:
    rows = len(source)
    row_bytes = max(1, int(np.prod(source.shape[1:], dtype=np.int64)) * source.dtype.itemsize)
    window = max(1, WINDOW_BYTES // row_bytes)
    end = len(target)
    target.resize(end + rows, axis=0)
    for first in range(0, rows, window):
        data = source[first:first + window]
        target[end + first:end + first + len(data)] = data + offset if offset else data


@contextlib.contextmanager
def _unraisable_ignored() -> Iterator[None]:
    """h5py prints errors of objects being freed (a write that failed on a full disk,
    say, retried as the dataset is closed) through both hooks below: the write's own
    error has said it already."""
    hooks = sys.unraisablehook, sys.excepthook
    sys.unraisablehook, sys.excepthook = (lambda _: None), (lambda *_: None)
    try:
        yield
    finally:
        sys.unraisablehook, sys.excepthook = hooks


# -- reading ---------------------------------------------------------------------------
# what h5py, numpy and the decoders raise on a damaged file (a missing dataset or
# attribute, values of the wrong type, a status code beyond the known ones)
_DAMAGE = (KeyError, AttributeError, TypeError, ValueError, IndexError, OSError)

class TrajectoryFile:
    """Reads a flat trajectory file, also while a recorder is still writing it.

    ``file[i]`` is the episode with run index ``i``; iteration goes in episode
    index order; :meth:`refresh` picks up episodes appended since opening.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._file = h5py.File(self.path, "r", swmr=True)
        except OSError as exc:
            raise EventError(f"cannot open {self.path} as an HDF5 trajectory file: {exc}") from None
        attrs = self._file.attrs
        if attrs.get("format") != FORMAT:
            self._file.close()
            raise EventError(f"{self.path} is not an eventroll flat trajectory file")
        if attrs.get("version") != FORMAT_VERSION:
            self._file.close()
            raise EventError(f"{self.path}: trajectory format version {attrs.get('version')}, "
                             f"this eventroll reads version {FORMAT_VERSION}")
        try:
            self._read_layout(attrs)
            self.refresh()
        except EventError:
            self._file.close()
            raise
        except _DAMAGE as exc:  # what a damaged file raises
            self._file.close()
            raise EventError(f"{self.path} is a damaged trajectory file: {one_line(exc)}") from None

    def _read_layout(self, attrs: Any) -> None:
        """The run, spaces and options the file says it holds; EventError if it lacks a
        dataset they need."""
        self.run_id = str(attrs["run_id"])
        self.env = str(attrs["env"])
        self.observation_space = space_from_description(codec.decode(attrs["observation_space"].tobytes()))
        self.action_space = space_from_description(codec.decode(attrs["action_space"].tobytes()))
        self.options = {name: bool(attrs[f"records_{name}"]) for name in ("next_observations", "infos", "logits")}
        self._window_rows = max(1, WINDOW_BYTES // row_bytes(self.observation_space, self.action_space))
        needed = ([path for path, _, _ in step_datasets(self.observation_space,
                                                        self.action_space, self.options)]
                  + [f"episodes/{name}" for name in INDEX])
        missing = [name for name in needed if not isinstance(self._file.get(name), h5py.Dataset)]
        if missing:
            raise EventError(f"{self.path} is a damaged trajectory file: it lacks the "
                             f"dataset{'s' if len(missing) > 1 else ''} {', '.join(missing)}")

    def refresh(self) -> None:
        """See the episodes a live recorder has flushed since the last look."""
        self._file.visititems(lambda _, obj: obj.refresh() if isinstance(obj, h5py.Dataset) else None)
        episodes = self._file["episodes"]
        count = min(episodes[name].shape[0] for name in INDEX)
        self._index = {name: episodes[name][:count] for name in INDEX}
        # the episode indices ascending, and where each is in the file (the last place, if
        # one was written twice): two arrays, 16 bytes an episode (a dict took about 110)
        order = np.argsort(self._index["index"], kind="stable")
        keys = self._index["index"][order]
        last = np.ones(len(keys), bool)
        last[:-1] = keys[1:] != keys[:-1]
        self._keys, self._positions = keys[last], order[last]

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def indices(self) -> list[int]:
        """The episode indices in the file, ascending."""
        return self._keys.tolist()

    def __contains__(self, index: int) -> bool:
        return self._position(index) is not None

    def _position(self, index: Any) -> int | None:
        """Where episode ``index`` is in the file; None if it is not there."""
        if not is_int(index):
            return None
        keys = self._keys
        found = int(np.searchsorted(keys, index))
        return int(self._positions[found]) if found < len(keys) and keys[found] == index else None

    def __iter__(self) -> Iterator[Trajectory]:
        """The episodes in index order, read a window of consecutive episodes of the file
        at a time (episodes are stored in the order they ended, near index order): one
        read per dataset and window instead of one per dataset and episode."""
        window: _Window | None = None
        for position in self._positions.tolist():
            if window is None or position not in window.positions:
                window = self._window(position)
            yield self._read(position, window)

    def _window(self, first: int) -> "_Window":
        """Episodes ``first``, ``first + 1``, ... (positions) up to ``WINDOW_BYTES`` of step
        rows, at least one."""
        starts, lengths = self._index["start"], self._index["length"]
        stop = int(np.searchsorted(starts, starts[first] + self._window_rows, side="right"))
        stop = min(max(stop, first + 1), len(starts))
        rows = range(int(starts[first]), int(starts[stop - 1] + lengths[stop - 1]))
        return _Window(self._file, range(first, stop), rows)

    def __getitem__(self, index: int) -> Trajectory:
        position = self._position(int(index))
        if position is None:
            raise KeyError(f"episode {index} is not in {self.path} ({len(self)} episodes)")
        return self._read(position)

    def _read(self, position: int, file: "h5py.File | _Window | None" = None) -> Trajectory:
        """The episode at ``position``, read from the file or from a window of it;
        :class:`EventError` naming it if the file's data for it is damaged."""
        try:
            return self._read_episode(position, file)
        except EventError:
            raise
        except _DAMAGE as exc:
            raise EventError(f"{self.path} is a damaged trajectory file: episode "
                             f"{int(self._index['index'][position])} cannot be read: "
                             f"{one_line(exc)}") from None

    def _read_episode(self, position: int, file: "h5py.File | _Window | None") -> Trajectory:
        column = {name: values[position] for name, values in self._index.items()}
        start, length = int(column["start"]), int(column["length"])
        steps = slice(start, start + length)
        file, obs_space = self._file if file is None else file, self.observation_space
        reset_observation = next_observations = None
        if column["reset"]:
            final = read_value(obs_space, file, FINALS, slice(position, position + 1))
            observations = _concat_rows(read_value(obs_space, file, "observations", steps), final)
            reset_observation = rows(observations, 0)
            next_observations = rows(observations, slice(1, None)) if length else None
        seeds = [None if int(column[k]) == NO_SEED else int(column[k]) for k in ("env_seed", "agent_seed")]
        if not 0 <= int(column["status"]) < len(STATUSES):
            raise EventError(f"{self.path} is a damaged trajectory file: episode "
                             f"{int(column['index'])} has the status code {int(column['status'])}"
                             f", none of the {len(STATUSES)} known ({', '.join(STATUSES)})")
        return Trajectory(
            index=int(column["index"]), worker=int(column["worker"]), env_seed=seeds[0],
            agent_seed=seeds[1], status=STATUSES[int(column["status"])],
            return_=float(column["return"]), reset_observation=reset_observation,
            next_observations=next_observations,
            actions=read_value(self.action_space, file, "actions", steps) if length else None,
            rewards=file["rewards"][steps], terminations=file["terminations"][steps],
            truncations=file["truncations"][steps],
            infos=self._heap("infos", steps) if self.options["infos"] else None,
            reset_info=(self._heap("episodes/reset_infos", slice(position, position + 1))[0]
                        if self.options["infos"] else None),
            logits=_stack_logits(self._heap("logits", steps)) if self.options["logits"] else None)

    def _heap(self, name: str, index: slice) -> list[Any]:
        ends = self._file[f"{name}/end"]
        first = int(ends[index.start - 1]) if index.start else 0
        row_ends = ends[index]
        data = self._file[f"{name}/data"][first:int(row_ends[-1])].tobytes() if len(row_ends) else b""
        values, offset = [], first
        for end in row_ends:
            values.append(codec.decode(data[offset - first:int(end) - first]))
            offset = int(end)
        return values

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TrajectoryFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Window:
    """Episodes ``positions`` of a trajectory file, whose step rows are ``rows``: each
    dataset is read once, whole, when first asked for, and stands in for the file's
    dataset (``window[path][index]``, index a slice in the file's rows or, for the final
    observations, positions)."""

    def __init__(self, file: h5py.File, positions: range, rows: range) -> None:
        self._file = file
        self.positions, self.rows = positions, rows
        self._read: dict[str, _WindowRows] = {}

    def __getitem__(self, path: str) -> "_WindowRows":
        found = self._read.get(path)
        if found is None:
            span = self.positions if path.startswith(FINALS) else self.rows
            found = self._read[path] = _WindowRows(self._file[path], span)
        return found


class _WindowRows:
    """The rows ``span`` of a dataset, read at once; sliced as the dataset (copies, so
    that an episode does not hold its whole window)."""

    def __init__(self, dataset: Any, span: range) -> None:
        self._dataset, self._span = dataset, span
        self._rows: Any = None
        self._strings: _WindowRows | None = None

    def asstr(self) -> "_WindowRows":
        if self._strings is None:
            self._strings = _WindowRows(self._dataset.asstr(), self._span)
        return self._strings

    def __getitem__(self, index: slice) -> Any:
        if self._rows is None:
            self._rows = self._dataset[self._span.start:self._span.stop]
        first = self._span.start
        return self._rows[index.start - first:index.stop - first].copy()


def _concat_rows(column: Any, last: Any) -> Any:
    if isinstance(column, dict):
        return {key: _concat_rows(column[key], last[key]) for key in column}
    if isinstance(column, list):
        return [_concat_rows(value, last[i]) for i, value in enumerate(column)]
    return np.concatenate([column, last])


def _stack_logits(values: list[Any]) -> Any:
    if not values or values[0] is None:
        return None
    return np.stack([np.asarray(v) for v in values])


def open_trajectories(path: str | os.PathLike[str]) -> TrajectoryFile:
    """Open a flat trajectory file (or the ``trajectories.h5`` of a run directory)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, FILE_NAME)
    return TrajectoryFile(path)
