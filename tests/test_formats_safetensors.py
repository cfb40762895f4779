"""safetensors with NumPy alone, checked against the reference library (`safetensors`, test extra):
files go both ways with the same names, dtypes and bytes, and damaged files are refused by name."""
import json
import os

import numpy as np
import pytest

from transformer_jit.formats.safetensors import SafetensorsFile, load_safetensors, save_safetensors

st = pytest.importorskip("safetensors.numpy", reason="the reference library safetensors (test extra) is not installed")


def every_dtype(rng):
    """One tensor of each dtype NumPy and safetensors share, with a scalar and an empty one."""
    return {
        "f64": rng.normal(size=(2, 3)), "f32": rng.normal(size=(3, 5)).astype(np.float32),
        "f16": rng.normal(size=7).astype(np.float16), "i64": rng.integers(-9, 9, 4),
        "i32": np.arange(-3, 3, dtype=np.int32), "i16": np.arange(5, dtype=np.int16),
        "i8": np.arange(-2, 3, dtype=np.int8), "u64": np.arange(3, dtype=np.uint64),
        "u32": np.arange(3, dtype=np.uint32), "u16": np.arange(3, dtype=np.uint16), "u8": np.arange(5, dtype=np.uint8),
        "bool": np.array([True, False, True]), "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 4), np.float32), "layer.0.ünïcode": np.ones((2, 2), np.float32),
    }


def assert_same_tensors(got, expected, f16_as_float32):
    assert sorted(got) == sorted(expected)
    for name, want in expected.items():
        if f16_as_float32 and want.dtype == np.float16:
            want = want.astype(np.float32)  # exact: every float16 is a float32
        assert got[name].dtype == want.dtype, name
        assert got[name].shape == want.shape, name
        assert got[name].tobytes() == want.tobytes(), name


def test_files_written_by_the_library_load_here(tmp_path, rng):
    tensors = every_dtype(rng)
    st.save_file(tensors, tmp_path / "lib.safetensors", metadata={"format": "np", "note": "x"})
    f = SafetensorsFile(tmp_path / "lib.safetensors")
    assert f.metadata == {"format": "np", "note": "x"}
    assert f.dtype("f16") == "F16" and f.shape("f32") == (3, 5)
    assert_same_tensors({name: f[name] for name in f.names}, tensors, f16_as_float32=True)


def test_files_written_here_load_in_the_library_and_are_its_bytes(tmp_path, rng):
    tensors = every_dtype(rng)
    save_safetensors(tmp_path / "ours.safetensors", tensors, metadata={"format": "pt"})
    assert_same_tensors(st.load_file(tmp_path / "ours.safetensors"), tensors, f16_as_float32=False)
    # Same layout rules (order, JSON, padding) as the reference writer: the very same file.
    st.save_file(tensors, tmp_path / "lib.safetensors", metadata={"format": "pt"})
    assert (tmp_path / "ours.safetensors").read_bytes() == (tmp_path / "lib.safetensors").read_bytes()


def test_save_then_load_is_exact_and_accepts_strided_and_big_endian_arrays(tmp_path, rng):
    base = rng.normal(size=(6, 4)).astype(np.float32)
    tensors = {"transposed": base.T, "strided": base[::2, 1:], "big_endian": base.astype(">f4")}
    save_safetensors(tmp_path / "a.safetensors", tensors)
    loaded = load_safetensors(tmp_path / "a.safetensors")
    for name, value in tensors.items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], value)


def test_float32_is_a_read_only_view_of_the_file_and_unaligned_data_is_copied(tmp_path):
    values = np.arange(4, dtype=np.float32)
    save_safetensors(tmp_path / "a.safetensors", {"w": values})
    w = SafetensorsFile(tmp_path / "a.safetensors")["w"]
    assert not w.flags.owndata and not w.flags.writeable  # memory-mapped, not read into memory
    np.testing.assert_array_equal(w, values)
    # One byte before a float32 puts it at an odd address: legal in the format, copied to align.
    path = write_raw(tmp_path / "odd.safetensors", {"pad": entry("U8", [1], 0, 1), "w": entry("F32", [4], 1, 17)},
                     b"\x07" + values.tobytes())
    w = SafetensorsFile(path)["w"]
    assert w.ctypes.data % 4 == 0
    np.testing.assert_array_equal(w, values)
    np.testing.assert_array_equal(st.load_file(path)["w"], values)


def test_bfloat16_loads_as_float32_exactly(tmp_path):
    # bfloat16 keeps a float32's top 16 bits: these values have zero low halves, so they are exact.
    values = np.array([1.0, -2.5, 3.140625, 0.0, -0.0, 2.0 ** -126, 1.5 * 2.0 ** 127, -np.inf], dtype=np.float32)
    high = (values.view(np.uint32) >> 16).astype("<u2")
    assert np.array_equal((high.astype(np.uint32) << 16).view(np.float32), values)
    path = write_raw(tmp_path / "bf16.safetensors", {"w": entry("BF16", [2, 4], 0, 16)}, high.tobytes())
    w = SafetensorsFile(path)["w"]
    assert w.dtype == np.float32 and w.shape == (2, 4)
    np.testing.assert_array_equal(w.reshape(-1), values)


@pytest.mark.interop
def test_bfloat16_written_by_the_library_from_torch_loads_here(tmp_path, rng):
    torch = pytest.importorskip("torch", reason="torch (bench extra) writes bfloat16; not installed")
    from safetensors.torch import save_file

    values = torch.tensor(rng.normal(size=(3, 5)), dtype=torch.bfloat16)
    save_file({"w": values}, tmp_path / "bf16.safetensors")
    np.testing.assert_array_equal(SafetensorsFile(tmp_path / "bf16.safetensors")["w"], values.float().numpy())


def test_a_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.safetensors"
    save_safetensors(path, {"w": np.ones(3, np.float32)})
    before = path.read_bytes()

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        save_safetensors(path, {"w": np.zeros(5, np.float32)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


@pytest.mark.parametrize("tensors, metadata, message", [
    ({"w": np.array(["a"])}, None, "cannot store"),
    ({"w": np.zeros(2, np.complex64)}, None, "cannot store"),
    ({"__metadata__": np.zeros(2)}, None, "names"),
    ({"w": np.zeros(2)}, {"k": 1}, "metadata"),
])
def test_save_refuses_what_the_format_cannot_hold(tmp_path, tensors, metadata, message):
    with pytest.raises((TypeError, ValueError), match=message):
        save_safetensors(tmp_path / "a.safetensors", tensors, metadata)
    assert not any(tmp_path.iterdir())


# -- damaged files ----------------------------------------------------------------------------------
def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def write_raw(path, header, data, length=None):
    """A file with this header (a dict, or raw bytes) and data buffer; `length` overrides N."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode("utf-8")
    n = len(blob) if length is None else length
    path.write_bytes(n.to_bytes(8, "little") + blob + data)
    return path


GOOD = {"a": entry("F32", [2, 3], 0, 24), "b": entry("F16", [4], 24, 32)}
DATA = bytes(range(32))

# (case, header, data, N override, words the error must contain, does the reference library refuse it too)
DAMAGED = [
    ("header length huge", GOOD, DATA, 2 ** 64 - 1, ["header length", "limit"], True),
    ("header length past the end", GOOD, DATA, 10_000, ["runs past the end of the file"], True),
    ("not JSON", b"{not json", b"", None, ["not valid JSON"], True),
    ("not UTF-8", b'{"\xff": 1}', b"", None, ["not valid JSON"], True),
    ("a JSON list", b"[1, 2]", b"", None, ["JSON object", "list"], True),
    ("JSON nested too deep", b"[" * 100_000, b"", None, ["not valid JSON"], True),
    ("a name twice", b'{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, '
                     b'"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}', b"", None,
     ["'a'", "twice"], False),
    ("entry not an object", {"a": 3}, b"", None, ["'a'", "object"], True),
    ("entry without offsets", {"a": {"dtype": "F32", "shape": [0]}}, b"", None, ["'a'", "data_offsets"], True),
    ("unknown dtype", {**GOOD, "b": entry("F7", [4], 24, 32)}, DATA, None, ["'b'", "unknown dtype 'F7'"], True),
    ("dtype not a string", {**GOOD, "b": entry(16, [4], 24, 32)}, DATA, None, ["'b'", "unknown dtype 16"], True),
    ("dtype NumPy lacks", {**GOOD, "b": entry("F8_E4M3", [8], 24, 32)}, DATA, None, ["'b'", "F8_E4M3"], False),
    ("negative dimension", {**GOOD, "a": entry("F32", [-2, 3], 0, 24)}, DATA, None, ["'a'", "shape"], True),
    ("float dimension", {**GOOD, "a": entry("F32", [2.0, 3], 0, 24)}, DATA, None, ["'a'", "shape"], True),
    ("shape not a list", {**GOOD, "a": entry("F32", "2x3", 0, 24)}, DATA, None, ["'a'", "shape"], True),
    ("one offset", {**GOOD, "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [24]}}, DATA, None,
     ["'a'", "data_offsets"], True),
    ("begin after end", {**GOOD, "a": entry("F32", [2, 3], 24, 0)}, DATA, None, ["'a'", "begin <= end"], True),
    ("negative offset", {**GOOD, "a": entry("F32", [2, 3], -24, 0)}, DATA, None, ["'a'", "data_offsets"], True),
    ("offsets past the end", {**GOOD, "b": entry("F16", [20], 24, 64)}, DATA, None,
     ["'b'", "past the end of the data buffer"], True),
    ("wrong size", {**GOOD, "a": entry("F32", [2, 3], 0, 20)}, DATA, None, ["'a'", "needs 24"], True),
    ("overlapping", {"a": entry("F32", [2, 3], 0, 24), "b": entry("F16", [4], 20, 28)}, DATA[:28], None,
     ["'b'", "overlaps", "'a'"], True),
    ("a hole", {"a": entry("F32", [2, 3], 0, 24), "b": entry("F16", [4], 28, 36)}, DATA + bytes(4), None,
     ["[24, 28)", "hole before 'b'"], True),
    ("bytes after the last tensor", GOOD, DATA + bytes(8), None, ["[32, 40)", "after the last"], True),
    ("metadata not strings", {**GOOD, "__metadata__": {"k": 1}}, DATA, None, ["__metadata__"], True),
]


@pytest.mark.parametrize("case, header, data, length, words, library_refuses", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_damaged_files_are_refused_naming_file_and_tensor(tmp_path, case, header, data, length, words, library_refuses):
    path = write_raw(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(ValueError) as e:
        SafetensorsFile(path)
    assert str(path) in str(e.value)
    for word in words:
        assert word in str(e.value), (word, str(e.value))
    if library_refuses:
        with pytest.raises(Exception):
            st.load_file(path)


def test_every_truncation_of_a_file_is_refused(tmp_path, rng):
    save_safetensors(tmp_path / "good.safetensors", {"a": rng.normal(size=(2, 3)).astype(np.float32),
                                                     "b": np.arange(3, dtype=np.int16)})
    whole = (tmp_path / "good.safetensors").read_bytes()
    SafetensorsFile(tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    for n in range(len(whole)):
        cut.write_bytes(whole[:n])
        with pytest.raises(ValueError, match=str(cut)):
            SafetensorsFile(cut)


def test_a_missing_file_and_a_missing_tensor_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        SafetensorsFile(tmp_path / "nowhere.safetensors")
    save_safetensors(tmp_path / "a.safetensors", {"w": np.ones(2, np.float32)})
    with pytest.raises(KeyError, match="'v'"):
        SafetensorsFile(tmp_path / "a.safetensors")["v"]
