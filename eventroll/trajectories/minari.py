"""The Minari layout: a dataset directory that ``minari.load_dataset`` opens as it is.

A dataset with id ``[namespace/]name-vN`` lives under a root directory (the one
Minari reads from ``MINARI_DATASETS_PATH``), in ``root/[namespace/]name-vN/data/``:
``metadata.json`` (id, spaces, totals) and ``main_data.hdf5``, one group
``episode_{id}`` per episode in Minari 0.5's HDF5 encoding. eventroll writes it
with h5py and never imports minari. Format and decisions: ``schemas/minari.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
from gymnasium import spaces

from eventroll import __version__
from eventroll.errors import ConfigError, EventError
from eventroll.files import write_atomic
from eventroll.trajectories.flat import (BLOCK_ROWS, CHUNK_CACHE, FILE_NAME, FLUSH_INTERVAL,
                                         NO_SEED, BlockWriter, TrajectoryFile, open_trajectories,
                                         pick, row_bytes, space_leaves)
from eventroll.trajectories.record import Trajectory

MINARI_VERSION = "0.5.0"  # the dataset format written; Minari 0.5.0 and later load it
DATASETS_PATH_VARIABLE = "MINARI_DATASETS_PATH"
DATA_DIR = "data"
MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
NAMESPACE_FILE = "namespace_metadata.json"
WRITTEN_STATUSES = ("terminated", "truncated")  # aborted and incomplete: counted, left out
# the ``eventroll`` attribute of each episode group; agent_seed NO_SEED: none
EPISODE_RECORD = np.dtype([("index", "<i8"), ("worker", "<i4"), ("agent_seed", "<i8"),
                           ("status", "S10")])
LIBVER = ("v108", "v108")  # HDF5 1.8 format: v3 superblocks leave a killed writer's file
# marked open for write, unreadable without h5clear
# a flush also comes after this many episodes: the metadata cache holds a block's groups
# until the flush (_MetadataHold). At 1,024, exporting 4,500 CartPole episodes peaked at
# 132 MiB and 45,000 at 165; at 256, 94 and 127, in the same time (36.8 to 53.0 s against
# 45.7 to 54.5 for 45,000)
BLOCK_EPISODES = 256
COMPACT_BYTES = 16 * 1024  # arrays up to this size live in their object header
PNG_LEVEL = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA

# Minari's dataset id rule (minari.dataset.minari_dataset.DATASET_ID_RE), version required
_DATASET_ID = re.compile(r"(?:(?P<namespace>[-_\w][-_\w/]*[-_\w]+)/)?(?P<name>[-_\w]+?)"
                         r"-v(?P<version>\d+)")
_STRING = h5py.string_dtype("utf-8")
_FRAME = h5py.vlen_dtype(np.uint8)
_MISSING = object()


# -- ids and paths ---------------------------------------------------------------------
def check_dataset_id(dataset_id: Any) -> str:
    """``dataset_id`` if it is a Minari id ``[namespace/]name-vN``; else a ConfigError."""
    if dataset_id is None:
        raise ConfigError("the Minari layout needs a dataset id: write it as [namespace/]name-vN, "
                          "e.g. recording.dataset_id=eventroll/cartpole-v0")
    match = _DATASET_ID.fullmatch(dataset_id) if isinstance(dataset_id, str) else None
    if match is None or "//" in (match["namespace"] or ""):
        raise ConfigError(f"Minari dataset id {dataset_id!r} is malformed: write it as "
                          "[namespace/]name-vN of letters, digits, - and _ (a namespace has 2 "
                          "or more), e.g. eventroll/cartpole-v0")
    return dataset_id


def datasets_root() -> str:
    """Minari's local datasets: ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``."""
    return os.environ.get(DATASETS_PATH_VARIABLE) or os.path.join(
        os.path.expanduser("~"), ".minari", "datasets")


def dataset_directory(root: str | os.PathLike[str], dataset_id: str) -> str:
    """The directory of dataset ``dataset_id`` (checked) under ``root`` (it holds ``data/``)."""
    return os.path.join(os.fspath(root), *dataset_id.split("/"))


def _exists_error(dataset_id: str, directory: str) -> ConfigError:
    return ConfigError(f"Minari dataset {dataset_id} already exists at {directory}; choose "
                       "another dataset id (e.g. a new -vN version) or delete it")


def _claim(root: str, dataset_id: str, directory: str) -> None:
    """Create ``directory`` (and namespace markers), refusing an existing dataset."""
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    try:
        os.mkdir(directory)
    except FileExistsError:
        raise _exists_error(dataset_id, directory) from None
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        marker = os.path.join(root, *parts[:depth], NAMESPACE_FILE)
        if not os.path.exists(marker):
            write_atomic(marker, "{}", durable=False)


def _staging_directory(directory: str) -> str:
    """A hidden sibling of ``directory`` (Minari skips hidden directories)."""
    name = f".{os.path.basename(directory)}.{os.getpid()}.partial"
    return os.path.join(os.path.dirname(directory), name)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return repr(value)


# -- spaces ------------------------------------------------------------------------------
def minari_space(space: spaces.Space) -> dict[str, Any]:
    """A space as ``minari.serialization.serialize_space`` writes it (before ``json.dumps``)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "dtype": str(space.dtype), "shape": list(space.shape),
                "low": space.low.tolist(), "high": space.high.tolist()}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "dtype": "int64", "start": int(space.start), "n": int(space.n)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "dtype": str(space.dtype), "nvec": space.nvec.tolist(),
                "start": space.start.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "subspaces": {k: minari_space(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "subspaces": [minari_space(s) for s in space.spaces]}
    if isinstance(space, spaces.Text):
        return {"type": "Text", "max_length": space.max_length, "min_length": space.min_length,
                "charset": space.characters}
    raise ConfigError(f"the Minari layout does not support {type(space).__name__} spaces; it "
                      "records Box, Discrete, MultiDiscrete, MultiBinary, Text, Dict and Tuple "
                      "(use the flat layout for others)")


def is_image_space(space: spaces.Space) -> bool:
    """Minari's rule (``minari_storage.is_image_space``): such values are stored as image files."""
    return (isinstance(space, spaces.Box) and len(space.shape) in (2, 3)
            and space.shape[0] >= 32 and space.shape[1] >= 32 and space.dtype == np.uint8
            and bool(np.all(space.low == 0)) and bool(np.all(space.high == 255)))


def image_leaves(space: spaces.Space, name: str) -> set[int]:
    """The ids of the leaf spaces Minari stores as image files; refuses those whose frames
    Minari's PIL decoding cannot give back in shape."""
    images = set()
    for where, keys, _, _ in space_leaves(space, name):
        leaf = pick(space, keys)
        if not is_image_space(leaf):
            continue
        if len(leaf.shape) == 3 and leaf.shape[2] not in (2, 3, 4):
            raise ConfigError(f"{where} {leaf} is an image to Minari, which stores it as image "
                              f"files and cannot give back {leaf.shape[2]}-channel frames; use "
                              "2, 3 or 4 channels, or (H, W) for grey, or record with the flat "
                              "layout")
        images.add(id(leaf))
    return images


def png(frame: np.ndarray) -> np.ndarray:
    """A lossless PNG file of a uint8 image (H, W) or (H, W, 2|3|4), as a byte array."""
    height, width = frame.shape[:2]
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    scanlines = np.zeros((height, 1 + width * channels), np.uint8)  # filter byte 0: none
    scanlines[:, 1:] = frame.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOR_TYPES[channels], 0, 0, 0)
    chunks = ((b"IHDR", header), (b"IDAT", zlib.compress(scanlines.tobytes(), PNG_LEVEL)),
              (b"IEND", b""))
    body = b"".join(struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data)) for kind, data in chunks)
    return np.frombuffer(PNG_SIGNATURE + body, np.uint8)


# -- infos -------------------------------------------------------------------------------
def info_columns(infos: list[Mapping[str, Any]], path: str = "infos"
                 ) -> tuple[dict[str, Any], list[str]]:
    """Minari's info columns (nested maps of per-row arrays) from rows of info dicts.

    Returns the columns and the key paths left out: keys missing from some row,
    keys HDF5 cannot name, and values that do not stack into a bool, number or
    string array of one shape.
    """
    columns: dict[str, Any] = {}
    dropped: list[str] = []
    keys = list(dict.fromkeys(key for info in infos for key in info))
    for key in keys:
        where = f"{path}/{key}"
        values = [info.get(key, _MISSING) for info in infos]
        if not isinstance(key, str) or not key or "/" in key or key == "." \
                or any(value is _MISSING for value in values):
            dropped.append(where)
        elif all(isinstance(value, Mapping) for value in values):
            columns[key], inner = info_columns(values, where)
            dropped += inner
        else:
            array = _info_array(values)
            if array is None:
                dropped.append(where)
            else:
                columns[key] = array
    return columns, dropped


def _info_array(values: list[Any]) -> np.ndarray | None:
    try:
        array = np.asarray(values)
    except ValueError:  # ragged
        return None
    return array if array.dtype.kind in "biufcSU" else None


# -- writing -----------------------------------------------------------------------------
class _MetadataHold:
    """Keeps changed HDF5 metadata in memory until the writer flushes.

    By default the metadata cache writes changed entries back whenever it
    evicts them, so a writer killed between flushes can leave structures the
    last flush wrote (the root group's link index) half-updated and the file
    unreadable. With evictions off, the file on disk stays the last flush's
    (new raw data aside). Without evictions the cache only grows, so after each
    flush, when every entry is clean, :meth:`trim` lets it evict (which writes
    nothing) down to ``TRIM_BYTES``.
    """

    TRIM_BYTES = 1 << 20
    HOLD_BYTES = 2 << 20

    def __init__(self, file: h5py.File) -> None:
        self._file = file
        self._hold, self._trim = file.id.get_mdc_config(), file.id.get_mdc_config()
        for config, size in ((self._hold, self.HOLD_BYTES), (self._trim, self.TRIM_BYTES)):
            config.incr_mode = config.decr_mode = config.flash_incr_mode = 0  # fixed size
            config.set_initial_size, config.initial_size = True, size
        self._hold.evictions_enabled = False
        file.id.set_mdc_config(self._hold)

    def trim(self) -> None:
        """Shrink the cache; call right after a flush only."""
        # a smaller size makes the cache evict at its next access, here a lookup
        self._file.id.set_mdc_config(self._trim)
        "episode_0" in self._file
        self._file.id.set_mdc_config(self._hold)


def episode_record(trajectory: Trajectory) -> np.ndarray:
    """The ``eventroll`` attribute of an episode group (one compound value)."""
    agent_seed = NO_SEED if trajectory.agent_seed is None else trajectory.agent_seed
    return np.array((trajectory.index, trajectory.worker, agent_seed, trajectory.status),
                    dtype=EPISODE_RECORD)


class _Hdf5:
    """Creates groups, arrays and attributes with h5py's low-level API, 3x faster than
    the high-level one: no modification times, small arrays compact (in their object
    header), types and dataspaces made once."""

    MAX_SPACES = 4096

    def __init__(self) -> None:
        self._types: dict[np.dtype, Any] = {}
        self._spaces: dict[tuple[int, ...], Any] = {}
        self._gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        self._gcpl.set_obj_track_times(False)
        self._contiguous = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self._contiguous.set_obj_track_times(False)
        self._compact = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self._compact.set_obj_track_times(False)
        self._compact.set_layout(h5py.h5d.COMPACT)

    def _type(self, dtype: np.dtype) -> Any:
        found = self._types.get(dtype)
        if found is None:
            found = self._types[dtype] = h5py.h5t.py_create(dtype, logical=True)
        return found

    def _space(self, shape: tuple[int, ...]) -> Any:
        found = self._spaces.get(shape)
        if found is None:
            if len(self._spaces) >= self.MAX_SPACES:
                self._spaces.clear()
            found = self._spaces[shape] = (h5py.h5s.create_simple(shape) if shape
                                           else h5py.h5s.create(h5py.h5s.SCALAR))
        return found

    def group(self, parent: Any, name: str | None) -> Any:
        """A new group; None: an anonymous one, which a hard link must reach before it closes."""
        return h5py.h5g.create(parent, None if name is None else name.encode(), gcpl=self._gcpl)

    def array(self, parent: Any, name: str, data: np.ndarray) -> None:
        if data.dtype.kind in "OU":
            h5py.Group(parent).create_dataset(name, data=data.astype(object), dtype=_STRING)
            return
        data = np.ascontiguousarray(data)
        dcpl = self._compact if 0 < data.nbytes <= COMPACT_BYTES else self._contiguous
        dataset = h5py.h5d.create(parent, name.encode(), self._type(data.dtype),
                                  self._space(data.shape), dcpl=dcpl)
        if data.size:
            dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, data)

    def frames(self, parent: Any, name: str, frames: np.ndarray) -> None:
        encoded = np.empty(len(frames), dtype=object)
        encoded[:] = [png(frame) for frame in frames]
        h5py.Group(parent).create_dataset(name, data=encoded, dtype=_FRAME)

    def attribute(self, parent: Any, name: str, value: np.ndarray) -> None:
        h5py.h5a.create(parent, name.encode(), self._type(value.dtype),
                        self._space(value.shape)).write(value)


class MinariWriter(BlockWriter):
    """Writes :class:`Trajectory` s as a Minari dataset, in blocks like the flat writer.

    ``path`` is the datasets root (``MINARI_DATASETS_PATH``); the dataset goes to
    ``path/<dataset_id>/data/``. ``add`` buffers whole episodes; they are written
    and flushed together once ``block_rows`` steps (or ``BLOCK_EPISODES``
    episodes) are buffered, ``flush_interval`` seconds after the oldest buffered
    episode ended (:meth:`tick`), and at :meth:`close`. After each flush
    ``metadata.json`` is replaced atomically with the totals of what the HDF5
    file holds, so a killed writer leaves a dataset with every flushed episode
    (unless killed inside the short second HDF5 flush, see :meth:`flush`).

    Terminated and truncated episodes are written, with Minari ids in the order
    they are added; aborted and incomplete ones are counted and left out.
    ``env``, ``env_kwargs`` and ``max_episode_steps`` make the env spec;
    ``next_observations`` needs nothing (Minari's observations hold them).
    ``staging`` writes into a hidden sibling directory that :meth:`close` moves
    into place, so the dataset appears whole or not at all.
    """

    def __init__(self, path: str | os.PathLike[str], observation_space: spaces.Space,
                 action_space: spaces.Space, *, dataset_id: str | None, env: str = "",
                 env_kwargs: Mapping[str, Any] | None = None,
                 max_episode_steps: int | None = None, run_id: str = "",
                 next_observations: bool = False, infos: bool = False, logits: bool = False,
                 block_rows: int = BLOCK_ROWS, flush_interval: float = FLUSH_INTERVAL,
                 episode_order: str = "ended", staging: bool = False) -> None:
        if logits:
            raise ConfigError("the Minari layout has no place for policy logits; set logits=false "
                              "or record with the flat layout")
        super().__init__(block_rows, flush_interval, row_bytes(observation_space, action_space))
        self.dataset_id = check_dataset_id(dataset_id)
        self.root = os.fspath(path)
        self.directory = dataset_directory(self.root, self.dataset_id)
        self.observation_space, self.action_space = observation_space, action_space
        self.infos = infos
        self._images = (image_leaves(observation_space, "observation space")
                        | image_leaves(action_space, "action space"))
        self._fixed_metadata = json.dumps(self._constant_metadata(env, env_kwargs,
                                                                  max_episode_steps))
        self._eventroll = {"version": __version__, "run_id": run_id, "env": env,
                           "env_kwargs": None if env_kwargs is None else dict(env_kwargs),
                           "max_episode_steps": max_episode_steps,
                           "episode_order": episode_order, "infos": infos}
        self._staging = _staging_directory(self.directory) if staging else None
        self.data_path = self._create_directory()
        self._file = h5py.File(os.path.join(self.data_path, MAIN_FILE), "w-", libver=LIBVER,
                               **CHUNK_CACHE)
        self._hold = _MetadataHold(self._file)
        self._file.flush()
        self._hdf5 = _Hdf5()
        self.episodes = self.steps = 0
        self.skipped: Counter[str] = Counter()
        self.infos_dropped: Counter[str] = Counter()
        self._write_metadata()

    def _constant_metadata(self, env: str, env_kwargs: Mapping[str, Any] | None,
                           max_episode_steps: int | None) -> dict[str, Any]:
        """The keys of ``metadata.json`` that never change (serialised once: spaces can be big)."""
        metadata = {
            "dataset_id": self.dataset_id, "data_format": "hdf5",
            "observation_space": json.dumps(minari_space(self.observation_space)),
            "action_space": json.dumps(minari_space(self.action_space)),
            "minari_version": MINARI_VERSION}
        spec = env_spec_json(env, env_kwargs, max_episode_steps)
        if spec is not None:
            metadata["env_spec"] = spec
        return metadata

    def _create_directory(self) -> str:
        """Claim the dataset (or staging) directory and make its ``data/``; return that."""
        if self._staging is not None and os.path.exists(self.directory):
            raise _exists_error(self.dataset_id, self.directory)
        directory = self._staging or self.directory
        _claim(self.root, self.dataset_id, directory)
        data_path = os.path.join(directory, DATA_DIR)
        os.mkdir(data_path)
        return data_path

    # -- the writer protocol (as FlatWriter) ------------------------------------------
    max_block_episodes = BLOCK_EPISODES

    def _write_block(self, block: list[Trajectory]) -> None:
        """Write a block of episodes, flush the file, then update ``metadata.json``.

        Two HDF5 flushes: the first writes the new episode groups while no link
        reaches them yet; the second writes only the root group's new links
        (HDF5 rewrites that index in place, with no atomic update). So the one
        moment a kill can tear the on-disk structures is that short second
        flush, not the writing of the whole block.
        """
        written = [t for t in block if _is_written(t)]
        groups = [self._write_episode(t, self.episodes + i) for i, t in enumerate(written)]
        self._file.flush()
        self._hold.trim()  # a small cache makes the second flush shorter
        for episode_id, group in enumerate(groups, start=self.episodes):
            h5py.h5o.link(group, self._file.id, f"episode_{episode_id}".encode())
        self._file.flush()
        self.episodes += len(written)
        self.steps += sum(t.length for t in written)
        self.skipped.update(t.status for t in block if not _is_written(t))
        self._write_metadata()
        self._hold.trim()

    def close(self) -> dict[str, Any]:
        self.flush()
        self._file.close()
        self._write_metadata()
        if self._staging is not None:
            self._publish()
        return {"path": self.directory, "dataset_id": self.dataset_id, "episodes": self.episodes,
                "steps": self.steps, "skipped": dict(self.skipped),
                "infos_dropped": dict(self.infos_dropped)}

    def discard(self) -> None:
        """Close and delete the unfinished dataset of a staging writer (export)."""
        if self._staging is None:
            raise ConfigError("discard() deletes a staging writer's dataset; a live dataset "
                              "keeps what it holds: call close()")
        self._file.close()
        shutil.rmtree(self._staging, ignore_errors=True)

    # -- the parts ----------------------------------------------------------------------
    def _write_episode(self, trajectory: Trajectory, episode_id: int) -> Any:
        """One episode as an anonymous group (linked into the root by :meth:`flush`)."""
        hdf5, length = self._hdf5, trajectory.length
        group = hdf5.group(self._file.id, None)
        hdf5.attribute(group, "id", np.array(episode_id, np.int64))
        hdf5.attribute(group, "total_steps", np.array(length, np.int64))
        if trajectory.env_seed is not None:
            hdf5.attribute(group, "seed", np.array(trajectory.env_seed, np.int64))
        hdf5.attribute(group, "eventroll", episode_record(trajectory))
        where = f"episode {trajectory.index}"
        self._write_value(group, "observations", self.observation_space,
                          trajectory.observations, length + 1, f"{where} observations")
        self._write_value(group, "actions", self.action_space, trajectory.actions, length,
                          f"{where} actions")
        hdf5.array(group, "rewards", np.asarray(trajectory.rewards, dtype=np.float64))
        hdf5.array(group, "terminations", np.asarray(trajectory.terminations, dtype=bool))
        hdf5.array(group, "truncations", np.asarray(trajectory.truncations, dtype=bool))
        self._write_infos(group, trajectory)
        return group

    def _write_value(self, group: Any, name: str, space: spaces.Space, value: Any, rows: int,
                     where: str) -> None:
        """One field in Minari's encoding: Dict keys and Tuple ``_index_i`` as subgroups."""
        if isinstance(space, (spaces.Dict, spaces.Tuple)):
            subgroup = self._hdf5.group(group, name)
            items = (space.spaces.items() if isinstance(space, spaces.Dict)
                     else ((i, sub) for i, sub in enumerate(space.spaces)))
            for key, sub in items:
                label = key if isinstance(space, spaces.Dict) else f"_index_{key}"
                self._write_value(subgroup, label, sub, _item(value, key, where), rows,
                                  f"{where}/{key}")
            return
        if isinstance(space, spaces.Text):
            array = np.asarray(value, dtype=object)
            _check_rows(array, (rows,), where)
            self._hdf5.array(group, name, array)
            return
        array = np.asarray(value, dtype=space.dtype)
        _check_rows(array, (rows, *space.shape), where)
        if id(space) in self._images:
            self._hdf5.frames(group, name, array)
        else:
            self._hdf5.array(group, name, array)

    def _write_infos(self, group: Any, trajectory: Trajectory) -> None:
        infos = self._hdf5.group(group, "infos")
        if not self.infos:
            return
        rows = [trajectory.reset_info or {}, *(trajectory.infos or [{}] * trajectory.length)]
        columns, dropped = info_columns(rows)
        self.infos_dropped.update(dropped)
        self._write_columns(infos, columns)

    def _write_columns(self, group: Any, columns: dict[str, Any]) -> None:
        for key, column in columns.items():
            if isinstance(column, dict):
                self._write_columns(self._hdf5.group(group, key), column)
            else:
                self._hdf5.array(group, key, column)

    def _write_metadata(self) -> None:
        """Replace ``metadata.json`` with the totals of what the HDF5 file holds."""
        changing = {"total_episodes": self.episodes, "total_steps": self.steps,
                    "dataset_size": _size_mb(self.data_path),
                    "eventroll": {**self._eventroll, "skipped_episodes": dict(self.skipped)}}
        text = json.dumps(changing, default=_json_default)[:-1] + ", " + self._fixed_metadata[1:]
        write_atomic(os.path.join(self.data_path, METADATA_FILE), text, durable=False)

    def _publish(self) -> None:
        try:
            os.rename(self._staging, self.directory)
        except OSError:
            shutil.rmtree(self._staging, ignore_errors=True)
            raise ConfigError(f"Minari dataset {self.dataset_id} appeared at {self.directory} "
                              "while it was being written; choose another dataset id") from None


def _is_written(trajectory: Trajectory) -> bool:
    """Whether an episode goes into the dataset: whole ones only (see WRITTEN_STATUSES)."""
    return trajectory.status in WRITTEN_STATUSES and trajectory.reset_observation is not None


def _item(value: Any, key: Any, where: str) -> Any:
    try:
        return value[key]
    except (KeyError, IndexError, TypeError):
        raise EventError(f"{where}: the recorded values lack {key!r}, which the space declares"
                         ) from None


def _check_rows(array: np.ndarray, shape: tuple[int, ...], where: str) -> None:
    if array.shape != shape:
        raise EventError(f"{where}: recorded values have shape {array.shape}, the space needs "
                         f"{shape}")


def _size_mb(directory: str) -> float:
    """The size of the dataset's files in MB, as Minari's ``dataset_size`` counts it."""
    total = sum(entry.stat().st_size for entry in os.scandir(directory) if entry.is_file())
    return round(total / 1e6, 1)


def env_spec_json(env: str, env_kwargs: Mapping[str, Any] | None,
                  max_episode_steps: int | None = None) -> str | None:
    """The Gymnasium EnvSpec JSON Minari's ``recover_environment`` builds the env from.

    ``env`` is a Gymnasium id or ``module:callable``, ``max_episode_steps`` the
    runner's limit (None: the env's own); None when the env or its kwargs are
    unknown or the spec cannot be written as JSON.
    """
    if not env or env_kwargs is None:
        return None
    _, sep, attr = env.partition(":")
    try:
        if sep and attr.replace(".", "").replace("_", "").isalnum():
            spec = gym.envs.registration.EnvSpec(id=attr, entry_point=env, kwargs=dict(env_kwargs))
        else:
            spec = gym.spec(env)
            spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **env_kwargs})
        if max_episode_steps:
            spec = dataclasses.replace(spec, max_episode_steps=max_episode_steps)
        return spec.to_json()
    except Exception:  # an unregistered id or kwargs JSON cannot hold: Minari goes without
        return None


# -- export --------------------------------------------------------------------------------
def export_minari(source: str | os.PathLike[str] | TrajectoryFile,
                  out_dir: str | os.PathLike[str] | None, dataset_id: str, *,
                  infos: bool | None = None, env_kwargs: Mapping[str, Any] | None = None,
                  max_episode_steps: int | None = None,
                  block_rows: int = BLOCK_ROWS) -> dict[str, Any]:
    """Export a flat trajectory file as Minari dataset ``dataset_id`` under ``out_dir``.

    ``source``: a flat ``trajectories.h5``, a run directory holding one, or an
    open :class:`TrajectoryFile`. ``out_dir`` is the datasets root (None: Minari's
    own, :func:`datasets_root`). Episodes go in episode index order. ``infos``
    (default: when the file holds them) adds the info columns. The env spec
    takes the env kwargs and step limit from the run's event log when ``source``
    is a run directory (or its ``trajectories.h5``) that holds it; else
    ``env_kwargs`` and ``max_episode_steps`` say them (no kwargs: no env spec).
    Returns the writer's report.
    """
    check_dataset_id(dataset_id)
    file = source if isinstance(source, TrajectoryFile) else open_trajectories(source)
    try:
        start = None if isinstance(source, TrajectoryFile) else _run_start(file.path, file.run_id)
        if start is not None:
            env_kwargs = start.env_kwargs if env_kwargs is None else env_kwargs
            max_episode_steps = max_episode_steps or run_step_limit(start)
        writer = MinariWriter(datasets_root() if out_dir is None else out_dir,
                              file.observation_space, file.action_space, dataset_id=dataset_id,
                              env=file.env, env_kwargs=env_kwargs,
                              max_episode_steps=max_episode_steps, run_id=file.run_id,
                              infos=file.options["infos"] if infos is None else infos,
                              block_rows=block_rows, episode_order="index", staging=True)
        try:
            for trajectory in file:
                writer.add(trajectory)
            return writer.close()
        except BaseException:
            writer.discard()
            raise
    finally:
        if file is not source:
            file.close()


def run_step_limit(start: Any) -> int | None:
    """The runner's ``max_episode_steps`` recorded in a ``run.start`` (None: the env's own)."""
    return start.config.get("runner", {}).get("max_episode_steps")


def _run_start(path: str, run_id: str) -> Any:
    """The ``run.start`` of run ``run_id`` from the event log beside ``path`` (a flat
    file); None unless ``path`` is a run directory's ``trajectories.h5`` whose event log
    starts with that run."""
    from eventroll.recorders.eventlog import FILE_NAME as EVENT_LOG, read_events

    if os.path.basename(path) != FILE_NAME:
        return None
    run_dir = os.path.dirname(path)
    log = os.path.join(run_dir, EVENT_LOG)
    if not os.path.exists(log):
        return None
    for event in read_events(log):
        return event if event.KIND == "run.start" and event.run_id == run_id else None
    return None
