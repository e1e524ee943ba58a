"""msgpack encoding of event maps, aware of numpy arrays and scalars.

Plain msgpack types travel as themselves (tuples become arrays, subclasses of
builtins their base type, numpy.str_ and numpy.bytes_ scalars str and bytes). numpy values
travel as msgpack extension types whose payload is itself msgpack:

* ext 1, ndarray: ``[dtype.str, [dim, ...], raw C-order bytes]``
* ext 2, numpy scalar: ``[dtype.str, raw bytes]``

A reader may leave arrays undecoded (``arrays=RAW``): each then comes as a
:class:`RawArray`, its payload as it arrived, decoded when asked for; a recorder that
only copies arrays into columns of the same shape checks that a payload begins with
the :func:`array_head` of the dtype and shape it must have, and joins the data that
follows instead.

Only boolean, integer, float (16 to 64 bit), complex (64 and 128 bit),
fixed-width bytes (``S``) and unicode (``U``) dtypes are carried; anything else (object arrays, Python objects, sets)
is refused on encode. Decoding enforces size limits and checks that every array's
bytes match its dtype and shape; any failure raises :class:`CodecError`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

import msgpack
import numpy as np

from eventroll.errors import CodecError

EXT_NDARRAY = 1
EXT_SCALAR = 2

_DTYPE_RE = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|c(8|16)|[SU][0-9]{1,9})$")
MAX_NDIM = 32


@dataclass(frozen=True)
class Limits:
    """Size limits applied when decoding untrusted bytes."""

    max_message_bytes: int = 256 * 1024 * 1024
    max_container_len: int = 16 * 1024 * 1024
    max_str_bytes: int = 16 * 1024 * 1024


DEFAULT_LIMITS = Limits()


def _bin_head(n: int) -> bytes:
    """The msgpack header of a bin of ``n`` bytes."""
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


class RawArray:
    """An ndarray extension left undecoded: its payload, checked only when it is read."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def decode(self) -> np.ndarray:
        """The array, checked as :func:`decode` checks it; :class:`CodecError` if malformed."""
        try:
            return _decode_ext(EXT_NDARRAY, self.payload)
        except CodecError:
            raise
        except Exception as exc:  # msgpack raises many types on garbage; all are ours to wrap
            raise CodecError(f"malformed ndarray extension ({type(exc).__name__}: {exc})") from None

    def __repr__(self) -> str:
        return f"RawArray({len(self.payload)} bytes)"


def raw_array(array: np.ndarray) -> RawArray:
    """``array`` as a reader leaving it undecoded has it: its extension's payload."""
    head, _ = _encoded_head(array.dtype, array.shape)
    return RawArray(head + array.tobytes())


def _array_head(dtype: str, shape: tuple[int, ...]) -> tuple[bytes, int]:
    """What the payload of an array of ``dtype`` (its ``str``) and ``shape`` holds before
    its data, as :func:`encode` writes it, and the payload's whole size."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    head = msgpack.packb([dtype, list(shape), b""])[:-2] + _bin_head(nbytes)  # [:-2]: c4 00
    return head, len(head) + nbytes


array_head = functools.lru_cache(maxsize=4096)(_array_head)  # readers check heads by it


def decoded(value: Any) -> Any:
    """``value`` with every :class:`RawArray` in it (in maps and lists) decoded."""
    if type(value) is RawArray:
        return value.decode()
    if type(value) is dict:
        return {key: decoded(item) for key, item in value.items()}
    if type(value) is list:
        return [decoded(item) for item in value]
    return value


def _encode_default(obj: Any) -> Any:
    if type(obj) is RawArray:  # written again as it arrived
        return msgpack.ExtType(EXT_NDARRAY, obj.payload)
    if isinstance(obj, np.ndarray):
        if obj.nbytes >= LARGE_ARRAY:
            raise _LargeArray  # encode takes it whole, and checks its dtype there
        head, _ = _encoded_head(obj.dtype, obj.shape)
        return msgpack.ExtType(EXT_NDARRAY, head + obj.tobytes())  # C order, whatever the layout
    if isinstance(obj, np.str_):
        return str(obj)
    if isinstance(obj, np.bytes_):
        return bytes(obj)
    if isinstance(obj, np.generic):
        if not _DTYPE_RE.match(obj.dtype.str):
            raise CodecError(f"cannot encode a numpy scalar of dtype {obj.dtype}")
        return msgpack.ExtType(EXT_SCALAR, msgpack.packb([obj.dtype.str, obj.tobytes()]))
    if isinstance(obj, (tuple, list)):
        return list(obj)
    if isinstance(obj, dict):
        return dict(obj)
    for base in (bool, int, float, str, bytes):  # subclasses such as IntEnum
        if isinstance(obj, base):
            return base(obj)
    raise CodecError(f"cannot encode a value of type {type(obj).__name__}: {obj!r:.80}; "
                     "events carry only msgpack types and numpy arrays/scalars")


def _checked_dtype(text: Any) -> np.dtype:
    if type(text) is not str:
        raise CodecError(f"refused numpy dtype {text!r:.40}")
    return _dtype(text)


@functools.lru_cache(maxsize=256)
def _dtype(text: str) -> np.dtype:
    """The dtype named ``text``, if the allow-list has it (cached: logs repeat a few dtypes)."""
    if not _DTYPE_RE.match(text):
        raise CodecError(f"refused numpy dtype {text!r:.40}")
    return np.dtype(text)


@functools.lru_cache(maxsize=4096)
def _array_layout(dtype_text: Any, shape: Any) -> tuple[np.dtype, int]:
    """The dtype and byte size of an array extension's ``dtype`` and ``shape`` fields,
    checked (cached: a stream repeats a few dtypes and shapes)."""
    dtype = _checked_dtype(dtype_text)
    if type(shape) is not tuple or len(shape) > MAX_NDIM:
        raise CodecError(f"malformed ndarray shape {shape!r:.60}")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise CodecError(f"malformed ndarray shape {list(shape)!r:.60}")
        count *= dim
    return dtype, count * dtype.itemsize


def _checked_layout(dtype_text: Any, shape: Any, size: int) -> np.dtype:
    """The dtype of an array extension whose data holds ``size`` bytes, checked against
    its ``dtype`` and ``shape`` fields."""
    dtype, nbytes = _array_layout(dtype_text, shape)
    if nbytes != size:
        raise CodecError(f"ndarray of dtype {dtype.str} and shape {shape} needs {nbytes} bytes, "
                         f"got {size}")
    return dtype


LARGE_ARRAY = 1 << 16  # bytes: an array this large is encoded and decoded in place
_BIN_LENGTH_BYTES = {0xC4: 1, 0xC5: 2, 0xC6: 4}  # msgpack bin 8, 16, 32


def _large_ndarray(payload: bytes) -> np.ndarray:
    """An array payload read in place: its head (``[dtype, shape,`` and the bin header)
    decoded from its first bytes, then its data copied once, into the array."""
    head = msgpack.Unpacker(use_list=False, raw=False, max_buffer_size=256)
    head.feed(payload[:256])  # dtype and shape fit: MAX_NDIM dims of 9 bytes at most
    if head.read_array_header() != 3:
        raise CodecError("malformed ndarray extension: expected [dtype, shape, bytes]")
    dtype_text, shape = head.unpack(), head.unpack()
    at = head.tell()
    size_bytes = _BIN_LENGTH_BYTES.get(payload[at], 0) if at < len(payload) else 0
    size = int.from_bytes(payload[at + 1:at + 1 + size_bytes], "big")
    start = at + 1 + size_bytes
    if not size_bytes or size != len(payload) - start:
        raise CodecError("malformed ndarray extension: data is not bytes")
    dtype = _checked_layout(dtype_text, shape, size)
    return np.frombuffer(payload, dtype, offset=start).reshape(shape).copy()


def _decode_ext(code: int, payload: bytes) -> Any:
    if code == EXT_NDARRAY:
        if len(payload) >= LARGE_ARRAY:
            return _large_ndarray(payload)
        parts = msgpack.unpackb(payload, use_list=False, raw=False)
        if type(parts) is not tuple or len(parts) != 3:
            raise CodecError("malformed ndarray extension: expected [dtype, shape, bytes]")
        dtype_text, shape, data = parts
        if type(data) is not bytes:
            raise CodecError("malformed ndarray extension: data is not bytes")
        dtype = _checked_layout(dtype_text, shape, len(data))
        return np.ndarray(shape, dtype, bytearray(data))  # writable, in one copy
    if code == EXT_SCALAR:
        parts = msgpack.unpackb(payload, use_list=True, raw=False)
        if type(parts) is not list or len(parts) != 2 or type(parts[1]) is not bytes:
            raise CodecError("malformed numpy scalar extension: expected [dtype, bytes]")
        dtype = _checked_dtype(parts[0])
        if dtype.itemsize != len(parts[1]):
            raise CodecError(f"numpy scalar of dtype {dtype.str} needs {dtype.itemsize} bytes, "
                             f"got {len(parts[1])}")
        return np.frombuffer(parts[1], dtype=dtype)[0]
    raise CodecError(f"unknown msgpack extension type {code}")


@functools.lru_cache(maxsize=4096)
def _encoded_head(dtype: np.dtype, shape: tuple[int, ...]) -> tuple[bytes, int]:
    """:func:`array_head` of an array to encode, its dtype checked first; cached by the
    dtype and shape themselves (an array's ``dtype.str`` is a new string at every call,
    and checking it took a fifth of a worker's encoding), and only here: what it makes
    is not kept in :func:`array_head`'s cache too."""
    if not _DTYPE_RE.match(dtype.str):
        raise CodecError(f"cannot encode a numpy array of dtype {dtype}; use a bool, "
                         "integer, float (16-64 bit), complex, bytes or unicode dtype")
    return _array_head(dtype.str, shape)


class _LargeArray(Exception):
    """Raised out of msgpack by the encoder on a large array: :func:`encode` takes the
    value apart instead."""


def _packb(obj: Any) -> bytes:
    try:
        # strict types: numpy.float64 (a float subclass) must keep its dtype
        return msgpack.packb(obj, default=_encode_default, use_bin_type=True, datetime=False,
                             strict_types=True)
    except (CodecError, _LargeArray):
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode value: {exc}") from exc


def encode(obj: Any) -> bytes:
    """Encode a value (normally an event map) to msgpack bytes.

    The data of an array of at least ``LARGE_ARRAY`` is copied once, into the
    bytes returned, instead of four times (``tobytes``, its extension payload, msgpack's
    buffer, the bytes msgpack returns): a value holding one is encoded in parts, as
    msgpack would encode it, the array's data a part of its own (a view), and the parts
    are joined."""
    try:
        return _packb(obj)
    except _LargeArray:
        parts: list[bytes | np.ndarray] = []
        _append_parts(obj, parts)
        return b"".join(parts)


def _append_parts(obj: Any, parts: list[bytes | np.ndarray]) -> None:
    kind = type(obj)
    if kind is dict:
        parts.append(_map_header(len(obj)))
        for key, value in obj.items():
            _append_parts(key, parts)
            _append_parts(value, parts)
    elif kind is list:
        parts.append(_array_header(len(obj)))
        for value in obj:
            _append_parts(value, parts)
    elif isinstance(obj, np.ndarray) and obj.nbytes >= LARGE_ARRAY:
        head, size = _encoded_head(obj.dtype, obj.shape)
        data = np.ascontiguousarray(obj).reshape(-1).view(np.uint8)
        parts += [b"\xc9" + size.to_bytes(4, "big") + bytes((EXT_NDARRAY,)), head, data]
    else:
        try:
            parts.append(_packb(obj))
        except _LargeArray:  # a tuple, a subclass of dict or list: taken as msgpack takes it
            _append_parts(_encode_default(obj), parts)


@functools.lru_cache(maxsize=8)
def _unpack_kwargs(limits: Limits) -> dict[str, Any]:
    """Unpacker options for ``limits`` (built once per limits, not per message)."""
    return dict(
        ext_hook=_decode_ext, raw=False, use_list=True, strict_map_key=False,
        max_bin_len=limits.max_message_bytes, max_str_len=limits.max_str_bytes,
        max_array_len=limits.max_container_len, max_map_len=limits.max_container_len,
        max_ext_len=limits.max_message_bytes,
    )


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one msgpack value; raise :class:`CodecError` on anything malformed."""
    if len(data) > limits.max_message_bytes:
        raise CodecError(f"message of {len(data)} bytes exceeds the limit of "
                         f"{limits.max_message_bytes} bytes")
    try:
        return msgpack.unpackb(data, **_unpack_kwargs(limits))  # the cached dict is not mutated
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises many types on garbage; all are ours to wrap
        raise CodecError(f"malformed msgpack ({type(exc).__name__}: {exc})") from exc


RAW = "raw"  # ``arrays=RAW``: ndarrays come as RawArray, numpy scalars decoded


def _no_value(code: int, payload: bytes) -> None:
    return None


def _raw_array(code: int, payload: bytes) -> Any:
    return RawArray(payload) if code == EXT_NDARRAY else _decode_ext(code, payload)


@functools.lru_cache(maxsize=16)
def _reader_kwargs(limits: Limits, arrays: bool | str) -> dict[str, Any]:
    """Unpacker options for ``limits``: numpy values decoded (``arrays=True``), left out
    (False: None in their place) or arrays left undecoded (:data:`RAW`)."""
    hooks = {True: _decode_ext, False: _no_value, RAW: _raw_array}
    if arrays not in hooks:
        raise ValueError(f"arrays must be True, False or {RAW!r}, got {arrays!r}")
    return {**_unpack_kwargs(limits), "ext_hook": hooks[arrays]}


def split_records(body: bytes, count: int, limits: Limits = DEFAULT_LIMITS, *,
                  arrays: bool | str = True,
                  counted: Callable[[Any], int] | None = None) -> list[tuple[Any, int]]:
    """Decode the msgpack values written one after the other in ``body`` (a bus message's
    BODY), which stand for ``count`` events, each value for one (or for ``counted(value)``):
    each value with the offset where its bytes end. With
    ``arrays=False`` numpy values are not decoded (None in their place), for readers
    of the plain fields only: a CartPole ``step.batch`` then takes a quarter of the
    time; ``arrays=RAW`` leaves arrays as :class:`RawArray`. Raises :class:`CodecError`
    on anything malformed, a value cut short or another number of values included."""
    if len(body) > limits.max_message_bytes:
        raise CodecError(f"message of {len(body)} bytes exceeds the limit of "
                         f"{limits.max_message_bytes} bytes")
    kwargs = _reader_kwargs(limits, arrays)
    if count == 1:  # a batch of large observations, say: decoded where it lies
        try:
            value = msgpack.unpackb(body, **kwargs)
        except Exception:  # noqa: BLE001 - malformed: the way below says exactly how
            pass
        else:
            if counted is None or counted(value) == 1:
                return [(value, len(body))]
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(body), 1), **kwargs)
    unpacker.feed(body)  # a copy: msgpack's Unpacker reads from a buffer of its own
    values = []
    try:
        for value in unpacker:
            values.append((value, unpacker.tell()))
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises many types on garbage; all are ours to wrap
        raise CodecError(f"malformed msgpack at byte {unpacker.tell()} "
                         f"({type(exc).__name__}: {exc})") from exc
    complete = values[-1][1] if values else 0  # (tell() may count a part of a cut value)
    if complete != len(body):
        raise CodecError(f"a value is cut short: it starts at byte {complete} of {len(body)}")
    held = len(values) if counted is None else sum(counted(value) for value, _ in values)
    if held != count:
        raise CodecError(f"its header announces {count} events, its body holds {held}")
    return values


def stream_unpacker(limits: Limits = DEFAULT_LIMITS, *,
                    arrays: bool | str = True) -> msgpack.Unpacker:
    """An Unpacker for a stream of records (an event log), with the same checks;
    ``arrays`` as for :func:`split_records`."""
    return msgpack.Unpacker(max_buffer_size=limits.max_message_bytes,
                            **_reader_kwargs(limits, arrays))


def _container_header(n: int, fixed: int, head16: bytes, head32: bytes) -> bytes:
    if n < 16:
        return bytes([fixed | n])
    if n < 1 << 16:
        return head16 + n.to_bytes(2, "big")
    return head32 + n.to_bytes(4, "big")


def _map_header(n: int) -> bytes:
    return _container_header(n, 0x80, b"\xde", b"\xdf")


def _array_header(n: int) -> bytes:
    return _container_header(n, 0x90, b"\xdc", b"\xdd")


def _split_map_header(data: bytes) -> tuple[int, int]:
    """Return (entry count, header length) of an encoded map, without decoding it."""
    if not data:
        raise CodecError("empty record")
    first = data[0]
    if 0x80 <= first <= 0x8F:
        return first & 0x0F, 1
    if first == 0xDE and len(data) >= 3:
        return int.from_bytes(data[1:3], "big"), 3
    if first == 0xDF and len(data) >= 5:
        return int.from_bytes(data[1:5], "big"), 5
    raise CodecError("record is not a msgpack map")


SEQ_KEY = msgpack.packb("seq")
_FIXMAP_PLUS_SEQ = {0x80 | n: bytes([0x80 | (n + 1)]) + SEQ_KEY for n in range(15)}


def _uint(n: int) -> bytes:
    """msgpack's (shortest) encoding of a non-negative int, as ``msgpack.packb`` writes it."""
    if n < 0x80:
        return bytes((n,))
    if n < 1 << 8:
        return b"\xcc" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xcd" + n.to_bytes(2, "big")
    if n < 1 << 32:
        return b"\xce" + n.to_bytes(4, "big")
    return b"\xcf" + n.to_bytes(8, "big")


def seq_prefix(encoded_map: bytes | memoryview, seq: int) -> tuple[bytes, int]:
    """What adds ``{"seq": seq}`` (``seq`` >= 0) in front of an encoded map: the bytes that
    replace its map header, and that header's length."""
    head = _FIXMAP_PLUS_SEQ.get(encoded_map[0]) if encoded_map else None
    if head is not None:  # a map of up to 14 entries, as every event is
        return head + _uint(seq), 1
    count, header_len = _split_map_header(encoded_map)
    return _map_header(count + 1) + SEQ_KEY + _uint(seq), header_len


def prepend_fields(encoded_map: bytes | memoryview, fields: dict[str, Any]) -> bytes:
    """Return an encoded map with ``fields`` added in front, without re-encoding it
    (``seq`` alone, as recorders add it, goes faster with :func:`seq_prefix`).

    The caller guarantees that the keys of ``fields`` are not in the map.
    """
    count, header_len = _split_map_header(encoded_map)
    extra = b"".join([msgpack.packb(k) + encode(v) for k, v in fields.items()])
    return _map_header(count + len(fields)) + extra + encoded_map[header_len:]
