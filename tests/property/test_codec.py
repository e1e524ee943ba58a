"""Round trips through the codec, and what it makes of hostile bytes."""

from __future__ import annotations

import collections

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventroll import codec, events
from eventroll.errors import CodecError, EventError
from tests.property.strategies import arrays, every_event, scalars, values


def assert_same(a, b) -> None:
    """Structural equality that compares numpy values by dtype, shape and bytes."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    elif isinstance(a, np.generic):
        assert type(a) is type(b) and a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert type(a) is type(b) and a == b


class TestRoundTrip:
    @given(arrays())
    def test_arrays_keep_dtype_shape_and_bytes(self, array):
        """Any numeric, bool, bytes or unicode array decodes to an equal array."""
        assert_same(array, codec.decode(codec.encode(array)))

    @pytest.mark.parametrize("array", [
        np.arange(70_000, dtype=">i4").reshape(7, 10_000),
        np.full((37, 84, 84), 7, np.uint8),
        np.linspace(0, 1, 20_000),
        np.array(["abcd" * 10] * 500),
        np.zeros((2, 3, 4, 10_000), bool)], ids=lambda a: f"{a.dtype.str}{a.shape}")
    def test_large_arrays_keep_dtype_shape_and_bytes(self, array):
        """Arrays of 64 KiB or more, decoded in place from their head, come back equal and
        writable."""
        assert array.nbytes >= codec.LARGE_ARRAY
        decoded = codec.decode(codec.encode(array))
        assert_same(array, decoded)
        assert decoded.flags.writeable

    @pytest.mark.parametrize("value", [
        {"kind": "step.batch", "observation": np.full((64, 84, 84), 7, np.uint8), "n": 64},
        {"a": [1, (np.arange(20_000, dtype=">f8").reshape(100, 200).T, "x")], "b": None},
        collections.OrderedDict(image=np.zeros((300, 300), bool)[::2, ::2], t=3),
        [np.array(["abcd" * 10] * 500), np.linspace(0, 1, 20_000).astype(np.complex64)],
        {f"key{i}": np.arange(i * 5_000, dtype=np.int32) for i in range(20)},
        [np.full(70_000, i % 256, np.uint8) for i in range(17)]],
        ids=["batch", "tuple-strided-big-endian", "dict-subclass", "unicode-complex", "map16",
             "array16"])
    def test_large_arrays_encode_as_msgpack_would(self, value):
        """A value holding arrays of 64 KiB or more, taken apart to copy their data once,
        gives the bytes msgpack gives for the whole (tuples, subclasses, strided and
        big-endian arrays, maps and lists of more than 15 items included)."""
        def whole_array(obj):
            if isinstance(obj, np.ndarray):
                head, _ = codec.array_head(obj.dtype.str, obj.shape)
                return msgpack.ExtType(codec.EXT_NDARRAY, head + obj.tobytes())
            return codec._encode_default(obj)

        expected = msgpack.packb(value, default=whole_array, use_bin_type=True, datetime=False,
                                 strict_types=True)
        assert codec.encode(value) == expected

    @given(scalars())
    def test_numpy_scalars_stay_numpy_scalars(self, scalar):
        """A numpy scalar decodes to a numpy scalar of the same dtype."""
        assert_same(scalar, codec.decode(codec.encode(scalar)))

    @given(values)
    def test_nested_values(self, value):
        """Nested maps and lists of msgpack and numpy values round-trip."""
        assert_same(value, codec.decode(codec.encode(value)))

    @given(every_event)
    def test_every_event_kind(self, event):
        """Every kind of event survives encode, decode and the schema check unchanged."""
        record = event.to_record()
        decoded = events.from_record(codec.decode(codec.encode(record)))
        assert type(decoded) is type(event)
        assert_same(record, decoded.to_record())

    @given(every_event, st.integers(min_value=0, max_value=2**40))
    def test_prepended_seq(self, event, seq):
        """Adding ``seq`` to an encoded record gives the record with ``seq``."""
        raw = codec.prepend_fields(codec.encode(event.to_record()), {"seq": seq})
        decoded = events.from_record(codec.decode(raw))
        assert decoded.seq == seq
        assert_same(event.to_record(), {k: v for k, v in decoded.to_record().items() if k != "seq"})


class TestRawArrays:
    """Arrays left undecoded (``arrays=RAW``): checked when read, written again unchanged."""

    @staticmethod
    def raw(value):
        [(record, _)] = codec.split_records(codec.encode(value), 1, arrays=codec.RAW)
        return record

    @given(arrays())
    def test_a_raw_array_decodes_and_gives_its_bytes(self, array):
        raw = self.raw(array)
        assert type(raw) is codec.RawArray
        assert_same(array, raw.decode())
        head, size = codec.array_head(array.dtype.str, array.shape)
        assert len(raw.payload) == size and raw.payload[:len(head)] == head
        assert raw.payload[len(head):] == array.tobytes()
        assert codec.encode(raw) == codec.encode(array)

    @given(arrays(max_dims=2))
    def test_another_shape_or_dtype_has_another_head(self, array):
        payload = self.raw(array).payload
        other = "<i2" if array.dtype.str != "<i2" else "<u2"
        for dtype, shape in [(array.dtype.str, (*array.shape, 1)),
                             (array.dtype.str, (7, *array.shape)), (other, array.shape)]:
            head, size = codec.array_head(dtype, shape)
            assert not (len(payload) == size and payload.startswith(head))

    @given(values)
    def test_decoded_gives_the_value_with_every_array_decoded(self, value):
        """Nested arrays come raw, and ``decoded`` gives the value; scalars come decoded."""
        assert_same(value, codec.decoded(self.raw(value)))
        assert_same(value, codec.decode(codec.encode(self.raw(value))))

    def test_a_damaged_raw_array_raises_codec_error_when_read(self):
        import msgpack

        payload = msgpack.packb(["<f8", [4], b"\x00" * 8])
        raw = self.raw(msgpack.ExtType(codec.EXT_NDARRAY, payload))
        with pytest.raises(CodecError, match="needs 32 bytes"):
            raw.decode()

    @given(st.binary(max_size=64))
    def test_random_payloads_raise_only_codec_error(self, payload):
        """A garbage payload either decodes to an array or raises CodecError, nothing else."""
        try:
            codec.RawArray(payload).decode()
        except CodecError:
            pass

    def test_unknown_arrays_mode_is_refused(self):
        with pytest.raises(ValueError, match="arrays must be"):
            codec.split_records(codec.encode(1), 1, arrays="lazy")


class TestSplitRecords:
    @given(st.lists(every_event, min_size=1, max_size=5))
    def test_a_body_splits_into_its_records(self, batch):
        """Events written one after the other decode one by one, each with where it ends;
        without arrays the plain fields are the same and every numpy value is None."""
        raws = [codec.encode(event.to_record()) for event in batch]
        body = b"".join(raws)
        ends = list(np.cumsum([len(raw) for raw in raws]))
        full = codec.split_records(body, len(batch))
        assert [end for _, end in full] == ends
        for (record, _), event in zip(full, batch):
            assert_same(event.to_record(), record)
        for (plain, _), (record, _) in zip(codec.split_records(body, len(batch), arrays=False),
                                           full):
            assert events.envelope(plain) == (record["kind"], record["worker"], record["wseq"])
            assert plain["kind"] == record["kind"] and list(plain) == list(record)
            for key, value in record.items():
                if isinstance(value, (np.ndarray, np.generic)):
                    assert plain[key] is None
        with pytest.raises(CodecError, match=f"announces {len(batch) + 1} events, its body "
                                             f"holds {len(batch)}"):
            codec.split_records(body, len(batch) + 1)
        if len(batch) > 1:  # one announced: decoded at once, then found to hold more
            with pytest.raises(CodecError, match=f"announces 1 events, its body holds {len(batch)}"):
                codec.split_records(body, 1)

    @given(st.lists(every_event, min_size=1, max_size=3), st.data())
    def test_a_body_cut_short_is_refused(self, batch, data):
        """A body cut anywhere inside a record raises CodecError, with the byte it stopped at."""
        body = b"".join(codec.encode(event.to_record()) for event in batch)
        ends = set(np.cumsum([len(codec.encode(e.to_record())) for e in batch]).tolist())
        cut = data.draw(st.integers(min_value=1, max_value=len(body) - 1).filter(
            lambda n: n not in ends))
        with pytest.raises(CodecError, match="cut short: it starts at byte"):
            codec.split_records(body[:cut], len(batch))

    @given(st.binary(max_size=200))
    def test_garbage_raises_only_codec_error(self, data):
        """Any bytes split into values or raise CodecError, with or without arrays."""
        for with_arrays in (True, False):
            try:
                codec.split_records(data, 1, arrays=with_arrays)
            except CodecError:
                pass

    def test_envelope_names_what_is_wrong(self):
        """The envelope check refuses unknown kinds and a missing worker or wseq."""
        with pytest.raises(EventError, match="unknown event kind 'nope'"):
            events.envelope({"kind": "nope", "worker": 0, "wseq": 0})
        with pytest.raises(EventError, match="lacks an int 'worker' or 'wseq'"):
            events.envelope({"kind": "custom", "worker": 0})


class TestRefusals:
    @pytest.mark.parametrize("value", [object(), {1, 2}, np.array([object()]), 2**70, print])
    def test_encode_refuses_what_it_cannot_describe(self, value):
        """Objects, sets, object arrays and huge ints raise CodecError on encode."""
        with pytest.raises(CodecError):
            codec.encode({"x": value})

    @given(st.binary(max_size=200))
    def test_random_bytes_raise_only_codec_error(self, data):
        """Garbage either decodes to some value or raises CodecError, nothing else."""
        try:
            codec.decode(data)
        except CodecError:
            pass

    @given(every_event, st.data())
    def test_corrupted_records_raise_only_our_errors(self, event, data):
        """A record with a flipped byte or cut short raises CodecError or EventError, if anything."""
        raw = bytearray(codec.encode(event.to_record()))
        position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[position] ^= data.draw(st.integers(min_value=1, max_value=255))
        cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
        for candidate in (bytes(raw), bytes(raw[:cut])):
            try:
                events.from_record(codec.decode(candidate))
            except (CodecError, EventError):
                pass

    @pytest.mark.parametrize("depth", [10_000, 1_000_000])
    def test_deep_nesting_is_refused(self, depth):
        """Arrays nested thousands deep (a hostile log or message) raise CodecError."""
        with pytest.raises(CodecError, match="malformed msgpack"):
            codec.decode(b"\x91" * depth + b"\x00")
        with pytest.raises(CodecError):
            codec.split_records(b"\x91" * depth + b"\x00", 1, arrays=False)

    def test_array_bytes_must_match_dtype_and_shape(self):
        """An ndarray extension whose bytes do not fill its shape is refused."""
        import msgpack

        payload = msgpack.packb(["<f8", [4], b"\x00" * 8])
        with pytest.raises(CodecError, match="needs 32 bytes"):
            codec.decode(msgpack.packb(msgpack.ExtType(codec.EXT_NDARRAY, payload)))

    @pytest.mark.parametrize("damage", ["truncated", "short shape", "no bin", "head cut",
                                        "flipped head byte", "wrong dtype"])
    def test_damaged_large_arrays_raise_codec_error(self, damage):
        """An array of 64 KiB or more (decoded in place, from its head) that is damaged
        raises CodecError, whatever the damage."""
        import msgpack

        payload = msgpack.packb(["|u1", [300, 300], b"\x07" * 90_000])
        damaged = {"truncated": payload[:-1],
                   "short shape": msgpack.packb(["|u1", [300, 299], b"\x07" * 90_000]),
                   "no bin": msgpack.packb(["|u1", [300, 300], "x" * 90_000]),
                   "head cut": payload[:8] + b"\x00" * 90_000,
                   "flipped head byte": payload[:3] + bytes([payload[3] ^ 0xFF]) + payload[4:],
                   "wrong dtype": msgpack.packb(["|O", [300, 300], b"\x07" * 90_000])}[damage]
        assert len(damaged) >= codec.LARGE_ARRAY
        with pytest.raises(CodecError):
            codec.decode(msgpack.packb(msgpack.ExtType(codec.EXT_NDARRAY, damaged)))

    def test_object_dtype_is_refused_on_decode(self):
        """A dtype outside the allowed kinds is refused, even when the bytes fit."""
        import msgpack

        payload = msgpack.packb(["|O", [1], b"\x00" * 8])
        with pytest.raises(CodecError, match="refused numpy dtype"):
            codec.decode(msgpack.packb(msgpack.ExtType(codec.EXT_NDARRAY, payload)))

    def test_size_limit(self):
        """A message over the configured limit is refused before decoding."""
        limits = codec.Limits(max_message_bytes=64)
        with pytest.raises(CodecError, match="exceeds the limit"):
            codec.decode(codec.encode({"x": b"\x00" * 100}), limits)


class TestStringScalars:
    def test_numpy_str_and_bytes_scalars_travel_as_str_and_bytes(self):
        """numpy.str_ and numpy.bytes_ (subclasses of str and bytes) decode as str and bytes."""
        decoded = codec.decode(codec.encode([np.str_("ab"), np.bytes_(b"cd")]))
        assert decoded == ["ab", b"cd"]
        assert [type(v) for v in decoded] == [str, bytes]


@pytest.mark.soak
class TestFuzzLong:
    """The decoder against 100,000 hostile inputs each (run by hand: -m soak)."""

    @settings(max_examples=100_000, deadline=None)
    @given(st.binary(max_size=400))
    def test_random_bytes(self, data):
        for decode in (codec.decode, lambda d: codec.split_records(d, 2, arrays=False)):
            try:
                decode(data)
            except CodecError:
                pass

    @settings(max_examples=100_000, deadline=None)
    @given(every_event, st.data())
    def test_corrupted_records(self, event, data):
        TestRefusals.test_corrupted_records_raise_only_our_errors.hypothesis.inner_test(
            TestRefusals(), event, data)
