"""Sharding a text file: the plan covers every line once, each shard reads what the whole-file reader reads for
its lines (ids, reject lines), and the fan-in puts parts back in input order and refuses parts that do not add up."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nerwheel.errors import ConfigError
from nerwheel.formats import read_records
from nerwheel.shards import Shard, ShardError, ShardPart, plan_shards, read_shard, reconcile
from nerwheel.storage import Storage


def traffic(path: Path, n: int = 57, seed: int = 3) -> Path:
    """Texts of varied length with blank lines, a CRLF line, a bad UTF-8 line, U+FEFF inside, a BOM at the start."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    for i in range(n):
        lines.append(("浙江省杭州市" + "西湖区文三路" * rng.randint(0, 6) + f"{i}号").encode())
        if i % 11 == 3:
            lines.append(b"")
        if i % 17 == 5:
            lines.append(b"   ")
    lines[7] = lines[7] + b"\r"
    lines[20] = b"\xff\xfe bad bytes"
    lines[30] = "\ufeff以零宽空格开头".encode()
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines))  # no newline after the last line
    return path


def whole(path: Path):
    return read_records(path, format="text")


@pytest.mark.parametrize("count", [1, 2, 3, 7, 200])
def test_the_plan_covers_every_byte_and_line_once(tmp_path: Path, count: int) -> None:
    path = traffic(tmp_path / "traffic.txt")
    plan = plan_shards(str(path), count)
    size = path.stat().st_size
    n_lines = path.read_bytes().count(b"\n") + 1
    assert 1 <= len(plan) <= min(count, n_lines)
    assert [s.index for s in plan] == list(range(len(plan))) and all(s.count == len(plan) for s in plan)
    assert plan[0].start == 0 and plan[-1].end == size
    assert all(a.end == b.start and a.first_line + a.lines == b.first_line for a, b in zip(plan, plan[1:]))
    assert sum(s.lines for s in plan) == n_lines
    assert sum(s.texts for s in plan) == whole(path).read
    if count in (2, 3):  # balanced by bytes: no shard holds more than its share plus one line
        longest = max(len(line) for line in path.read_bytes().split(b"\n")) + 1
        assert all(s.end - s.start <= size / len(plan) + longest for s in plan)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_shards_read_what_the_whole_file_reader_reads(tmp_path: Path, count: int) -> None:
    path = traffic(tmp_path / "traffic.txt")
    full = whole(path)
    parts = [read_shard(s) for s in plan_shards(str(path), count)]
    assert [r.id for p in parts for r in p.records] == [r.id for r in full.records]
    assert [r.text for p in parts for r in p.records] == [r.text for r in full.records]
    assert [p.line_of(i) for p in parts for i in range(len(p.records))] == full.lines
    assert [(r.file, r.line, r.kind) for p in parts for r in p.rejects] == \
        [(r.file, r.line, r.kind) for r in full.rejects]
    assert any(r.text.startswith("\ufeff") for p in parts for r in p.records), "U+FEFF inside the file is content"
    assert sum(p.read for p in parts) == full.read


def test_a_shard_on_s3_reads_only_its_range_and_refuses_a_changed_file(s3_bucket: str, tmp_path: Path) -> None:
    path = traffic(tmp_path / "traffic.txt")
    uri = f"{s3_bucket}/in/traffic.txt"
    store = Storage()
    store.upload_file(path, uri)
    plan = plan_shards(uri, 3)
    assert plan == [Shard(s.index, s.count, uri, s.start, s.end, s.first_line, s.lines, s.texts, s.sha256)
                    for s in plan_shards(str(path), 3)]
    assert [r.id for s in plan for r in read_shard(s).records] == [r.id for r in whole(path).records]
    store.write_bytes(uri, path.read_bytes().replace("西湖区".encode(), "滨江区".encode()))
    with pytest.raises(ShardError, match="shard 0 of 3 .* differs from the plan"):
        read_shard(plan[0])


def test_an_empty_file_is_one_empty_shard(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (plan,) = plan_shards(str(tmp_path / "empty.txt"), 4)
    assert (plan.start, plan.end, plan.lines, plan.texts) == (0, 0, 0, 0)
    assert read_shard(plan).read == 0


@pytest.mark.parametrize("count", [0, 257])
def test_shard_count_is_bounded(tmp_path: Path, count: int) -> None:
    with pytest.raises(ConfigError, match="shards must be between 1 and 256"):
        plan_shards(str(traffic(tmp_path / "t.txt")), count)


def parts_for(plan: list[Shard], tmp_path: Path) -> list[ShardPart]:
    out = []
    for s in plan:
        result = read_shard(s)
        out.append(ShardPart.of(s, result, {"entities": float(len(result.records) * 2)}))
    return out


def test_reconcile_orders_parts_by_plan_and_adds_up(tmp_path: Path) -> None:
    path = traffic(tmp_path / "traffic.txt")
    plan = plan_shards(str(path), 4)
    parts = parts_for(plan, tmp_path)
    shuffled = [parts[i] for i in (2, 0, 3, 1)]
    totals = reconcile(shuffled, plan)
    assert [shuffled[i].index for i in totals.order] == [0, 1, 2, 3]
    full = whole(path)
    assert (totals.read, totals.accepted, totals.rejected) == (full.read, len(full.records), len(full.rejects))
    assert totals.counts == {"entities": 2.0 * len(full.records)}


def test_reconcile_names_every_shard_that_does_not_add_up(tmp_path: Path) -> None:
    plan = plan_shards(str(traffic(tmp_path / "traffic.txt")), 4)
    p0, p1, p2, p3 = parts_for(plan, tmp_path)
    lost = ShardPart(p2.index, p2.count, p2.sha256, p2.texts, p2.read - 1, p2.accepted - 1, p2.rejected)
    bad_sum = ShardPart(p3.index, p3.count, p3.sha256, p3.texts, p3.read, p3.accepted, p3.rejected + 1)
    other = ShardPart(p0.index, p0.count, "0" * 64, p0.texts, p0.read, p0.accepted, p0.rejected)
    with pytest.raises(ShardError) as err:
        reconcile([other, p1, p1, lost, bad_sum], plan)
    msg = str(err.value)
    for expected in ("shard 1 reported twice", "shard 0 read other bytes than were planned",
                     f"shard 2 read {p2.read - 1} texts, the plan counted {p2.texts}",
                     f"shard 3: read {p3.read} != accepted {p3.accepted} + rejected {p3.rejected + 1}"):
        assert expected in msg
    with pytest.raises(ShardError, match=r"shard\(s\) 3 of 4 reported nothing"):
        reconcile([p0, p1, p2], plan)
    with pytest.raises(ShardError, match="the plan has 3 shards"):
        reconcile([p0, p1, p2], plan[:3])
