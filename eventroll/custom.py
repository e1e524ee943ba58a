"""Custom events: named values that env or policy code records while an episode runs.

    from eventroll.custom import record_event

    def step(self, action):
        ...
        record_event("reward_part", part="speed", value=0.3)

No handle is passed around: the episode loop (``run_episode``) installs the
current episode's :class:`Emitter` in a context variable for the length of the
episode (:func:`emitting`), so the call works the same in the sequential runner
and in parallel workers, and no module-level state is ever changed. The emitter
knows the episode index and the step ``t`` being executed (0 for the first
``env.step`` call and the policy's action for it; ``None`` during reset), and
hands each event to the episode's sink, which records it as a ``custom`` event.

Field values are anything the event codec carries: numbers, strings, bools,
None, numpy scalars and arrays, lists and dicts of these. A value it cannot
carry raises :class:`~eventroll.errors.CodecError` naming the event and the
field; raised inside env or policy code, that aborts the episode like any other
error there.

Threads that env code starts itself see no emitter (a new thread starts with an
empty context) unless they run in a copy of the caller's context
(``contextvars.copy_context().run``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from eventroll import codec
from eventroll.errors import CodecError


class CustomSink(Protocol):
    """Takes the custom events of an episode (``BusSink`` sends them to the bus)."""

    def custom(self, name: str, episode: int, t: int | None, fields: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class Emitter:
    """Where the custom events of one episode go, and the step they belong to.

    The episode loop sets ``t`` before each step; ``None`` means the reset.
    """

    sink: CustomSink
    episode: int
    t: int | None = None

    def record(self, name: str, fields: dict[str, Any]) -> None:
        self.sink.custom(name, self.episode, self.t, fields)


_CURRENT: ContextVar[Emitter | None] = ContextVar("eventroll.custom.emitter", default=None)


@contextmanager
def emitting(sink: CustomSink, episode: int) -> Iterator[Emitter]:
    """Make ``record_event`` send to ``sink`` as episode ``episode`` within the block."""
    emitter = Emitter(sink, episode)
    token = _CURRENT.set(emitter)
    try:
        yield emitter
    finally:
        _CURRENT.reset(token)


def record_event(name: str, /, **fields: Any) -> bool:
    """Record the custom event ``name`` with ``fields`` in the current episode and step.

    Returns True when an episode run by eventroll took the event, False outside
    one (then nothing is recorded), so library code can call it unconditionally.
    Raises ValueError for a name that is not a non-empty str, and CodecError
    (naming the field) for a value that cannot be recorded.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"record_event: the event name must be a non-empty str, got {name!r:.60}")
    emitter = _CURRENT.get()
    if emitter is None:
        return False
    emitter.record(name, fields)
    return True


def encoding_error(name: str, fields: Mapping[str, Any], error: CodecError) -> CodecError:
    """The error to raise when the custom event ``name`` cannot be encoded: it names
    the first field whose value is the culprit."""
    for key, value in fields.items():
        try:
            codec.encode(value)
        except CodecError as exc:
            return CodecError(f"custom event {name!r}, field {key!r}: {exc}")
    return CodecError(f"custom event {name!r} cannot be recorded: {error}")
