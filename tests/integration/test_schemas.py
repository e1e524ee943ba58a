"""The JSON Schemas in schemas/ against the records that real runs write.

Records are validated in their JSON view (schemas/event-log.md): a numpy array
becomes ``{"__ndarray__": {"dtype", "shape"}}``, a numpy scalar
``{"__npscalar__": {"dtype"}}``, and bytes ``{"__bytes__": {"size"}}``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from eventroll import ParallelRunner, SequentialRunner, codec
from eventroll.events import ENVELOPE, EVENT_TYPES, Custom, Event, WorkerError
from eventroll.recorders.eventlog import EventLogReader
from eventroll.validation import json_view

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
SEEDS = dict(env_base_seed=1, agent_base_seed=2)
RUNNER_KINDS = {"run.start", "run.end", "worker.start", "worker.end", "worker.error",
                "episode.start", "step.batch", "episode.end"}


# -- the JSON view and the validators ----------------------------------------------

@cache
def schemas() -> dict[str, dict[str, Any]]:
    """Every schema file, by name (``run.start``, ``common``, ``header``, ...)."""
    return {path.name.removesuffix(".schema.json"): json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(SCHEMA_DIR.glob("*.schema.json"))}


@cache
def registry() -> Registry:
    """The local schema files under their ``$id``, so ``$ref`` never leaves the directory."""
    return Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas().values())


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schemas()[name], registry=registry())


def errors_of(name: str, record: dict[str, Any]) -> list[str]:
    """Every validation error of ``record`` against schema ``name``, one line each."""
    return [f"{name} at {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message:.200}"
            for error in validator(name).iter_errors(json_view(record))]


def published(event: Event, seq: int) -> dict[str, Any]:
    """``event`` as a logged record: stamped like a publisher, seq added like the hub, decoded."""
    event.worker, event.wseq, event.time = 0, 0, 1_700_000_000.25
    raw = codec.prepend_fields(codec.encode(event.to_record()), {"seq": seq})
    return codec.decode(raw)


# -- an env that raises ------------------------------------------------------------

class FlakyEnv(gym.Env):
    """Dict observations, Tuple actions and info with numpy values and bytes.

    The first, third, ... episode terminates after ``length`` steps; the second,
    fourth, ... raises in step ``fail_at``.
    """

    def __init__(self, length: int = 5, fail_at: int = 3, render_mode: str | None = None) -> None:
        self.observation_space = spaces.Dict({
            "position": spaces.Box(-1.0, 1.0, (2,), np.float32), "mode": spaces.Discrete(3)})
        self.action_space = spaces.Tuple((spaces.Discrete(2), spaces.Box(0.0, 1.0, (1,), np.float32)))
        self.length, self.fail_at = length, fail_at
        self._resets, self._t = 0, 0

    def _observation(self) -> dict[str, Any]:
        return {"position": self.np_random.uniform(-1, 1, 2).astype(np.float32),
                "mode": np.int64(self._t % 3)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._resets += 1
        self._t = 0
        return self._observation(), {"note": "reset", "resets": self._resets}

    def step(self, action):
        if self._resets % 2 == 0 and self._t == self.fail_at:
            raise RuntimeError(f"flaky env fails at step {self._t}")
        self._t += 1
        info = {"t": self._t, "speed": np.float32(0.5), "trace": np.arange(2), "raw": b"\x00\x01"}
        return self._observation(), 1.0, self._t >= self.length, False, info


def make_flaky_env(render_mode: str | None = None) -> FlakyEnv:
    return FlakyEnv(render_mode=render_mode)


# -- the runs --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Three small runs: sequential and parallel CartPole, and a sequential run whose
    second episode raises. Each maps to (header, raw records)."""
    base = tmp_path_factory.mktemp("schemas")
    runs = {
        "sequential": (SequentialRunner(n_episodes=3, console=None, **SEEDS), "CartPole-v1"),
        "parallel": (ParallelRunner(n_episodes=4, n_processes=2, console=None, **SEEDS),
                     "CartPole-v1"),
        "flaky": (SequentialRunner(n_episodes=2, console=None, **SEEDS), make_flaky_env),
    }
    found = {}
    for name, (runner, env) in runs.items():
        result = runner.run_with(env, run_dir=str(base / name))
        reader = EventLogReader(result.event_log)
        records = list(reader.records())
        assert reader.truncated_bytes == 0
        found[name] = (reader.header, records)
    return found


# -- the tests -------------------------------------------------------------------------

class TestSchemaFiles:
    def test_every_schema_is_valid_draft_2020_12(self):
        """Each schema file is itself a valid JSON Schema of draft 2020-12."""
        for name, schema in schemas().items():
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
            Draft202012Validator.check_schema(schema)

    def test_ids_and_titles(self):
        """Each schema has a title, a description and an $id that ends in its file name."""
        for name, schema in schemas().items():
            assert schema["$id"].endswith(f"/{name}.schema.json"), name
            assert schema["title"] and schema["description"], name

    def test_every_kind_has_a_schema(self):
        """There is one schema per event kind, besides common and header."""
        assert set(schemas()) == set(EVENT_TYPES) | {"common", "header"}

    @pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
    def test_schema_lists_the_fields_of_its_event(self, kind):
        """A kind's schema has exactly the envelope and the dataclass's fields; it requires
        the envelope and every field without a default, and fixes kind with const."""
        schema = schemas()[kind]
        fields = [f for f in dataclasses.fields(EVENT_TYPES[kind]) if f.name not in ENVELOPE]
        keys = {f.name.rstrip("_") for f in fields}
        required = {f.name.rstrip("_") for f in fields if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        assert set(schema["properties"]) == set(ENVELOPE) | keys
        assert set(schema["required"]) == set(ENVELOPE) | required
        assert schema["properties"]["kind"] == {"const": kind}
        assert schema["additionalProperties"] is False


class TestRecordedRuns:
    @pytest.mark.parametrize("run", ["sequential", "parallel", "flaky"])
    def test_header_matches_its_schema(self, logs, run):
        """The log header validates, and ``created`` is an ISO 8601 time with a UTC offset."""
        header, records = logs[run]
        assert errors_of("header", header) == []
        assert datetime.fromisoformat(header["created"]).utcoffset() is not None
        assert header["run_id"] == records[0]["run_id"]

    @pytest.mark.parametrize("run", ["sequential", "parallel", "flaky"])
    def test_every_record_matches_its_kind_schema(self, logs, run):
        """Every record of the log validates against the schema of its kind."""
        _, records = logs[run]
        problems = [f"seq {record.get('seq')}: {error}"
                    for record in records for error in errors_of(record["kind"], record)]
        assert problems == []

    def test_runs_emit_every_runner_kind(self, logs):
        """Together the runs emit (and so validate) every kind a runner emits."""
        seen = {record["kind"] for _, records in logs.values() for record in records}
        assert seen == RUNNER_KINDS

    def test_flaky_run_covers_nested_columns_and_aborts(self, logs):
        """The flaky run logs Dict/Tuple columns, an info list, a worker.error and an
        aborted episode.end, so the schemas were checked on all of them."""
        _, records = logs["flaky"]
        batches = [r for r in records if r["kind"] == "step.batch"]
        assert any(isinstance(b["observation"], dict) and isinstance(b["action"], list)
                   and isinstance(b["info"], list) for b in batches)
        errors = [r for r in records if r["kind"] == "worker.error"]
        assert [e["episode"] for e in errors] == [1] and "flaky env fails" in errors[0]["error"]
        assert [r["aborted"] for r in records if r["kind"] == "episode.end"] == [False, True]


class TestConstructedEvents:
    @pytest.mark.parametrize("event", [
        Custom(name="lap", episode=0, t=3,
               fields={"speed": np.float32(1.5), "trace": np.zeros((2, 3)), "tag": "x"}),
        Custom(name="epoch"),
        WorkerError(pid=123, episode=None, error="ImportError: no env"),
    ], ids=["custom-full", "custom-minimal", "worker.error-outside-episode"])
    def test_encoded_event_matches_its_schema(self, event):
        """An event encoded, stamped with seq and decoded as a recorder does validates; this
        covers custom events built by hand, and worker.error with episode null."""
        record = published(event, seq=7)
        assert errors_of(event.KIND, record) == []


class TestSchemasReject:
    @pytest.mark.parametrize("kind, change", [
        ("episode.end", lambda r: r.pop("return")),
        ("episode.end", lambda r: r.update(length="17")),
        ("episode.end", lambda r: r.pop("seq")),
        ("episode.end", lambda r: r.update(surprise=1)),
        ("step.batch", lambda r: r.update(reward=1.0)),
        ("step.batch", lambda r: r.update(terminated=np.zeros(r["n"], dtype=np.float64))),
        ("step.batch", lambda r: r.update(info={"t": 1})),
        ("run.start", lambda r: r.update(worker=0)),
        ("run.start", lambda r: r["observation_space"].pop("low")),
        ("worker.start", lambda r: r.update(kind="worker.end")),
    ], ids=["missing-required", "wrong-type", "missing-seq", "unknown-field", "reward-not-column",
            "terminated-not-bool", "info-not-list", "run.start-not-from-driver",
            "box-space-without-low", "kind-mismatch"])
    def test_broken_record_fails(self, logs, kind, change):
        """A real record with a required field removed, a wrong type or an unknown field
        fails validation against its kind's schema."""
        _, records = logs["sequential"]
        record = copy.deepcopy(next(r for r in records if r["kind"] == kind))
        assert errors_of(kind, record) == []
        change(record)
        with pytest.raises(ValidationError):
            validator(kind).validate(json_view(record))
