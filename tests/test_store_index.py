"""Tests of the shard arithmetic and the checkpoint hash of the softmax store index."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from meta_ood.errors import InputError
from meta_ood.store import parse_shard, sha256_file, shard_range


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [(10, 3, [range(0, 4), range(4, 7), range(7, 10)]), (2, 3, [range(0, 1), range(1, 2), range(2, 2)]), (6, 1, [range(0, 6)])],
)
def test_shard_range(n, k, expected):
    got = [shard_range(n, i, k) for i in range(k)]
    assert got == expected
    assert sorted(x for r in got for x in r) == list(range(n))


def test_shard_range_and_parse_shard_validation():
    assert parse_shard("0/4") == (0, 4)
    assert parse_shard(" 3 / 4 ") == (3, 4)
    assert parse_shard((1, 2)) == (1, 2)
    for bad in ("4/4", "-1/4", "1/0", "a/b", "1-4"):
        with pytest.raises(InputError):
            parse_shard(bad)
    with pytest.raises(InputError, match=r"numbered 0\.\.3"):
        parse_shard("4/4")
    with pytest.raises(InputError):
        shard_range(5, 2, 2)


def test_sha256_file(tmp_path):
    p = tmp_path / "ckpt.pt"
    data = np.random.default_rng(0).bytes(3_000_001)
    p.write_bytes(data)
    assert sha256_file(p, chunk_size=1 << 16) == hashlib.sha256(data).hexdigest()
    with pytest.raises(InputError, match="not found"):
        sha256_file(tmp_path / "missing.pt")


def test_aligned_shards_start_at_block_multiples():
    for n in (0, 1, 5, 6, 7, 23):
        for k in (1, 2, 3, 4):
            for align in (1, 2, 4):
                ranges = [shard_range(n, i, k, align=align) for i in range(k)]
                assert [j for r in ranges for j in r] == list(range(n))
                assert all(r.start % align == 0 for r in ranges if len(r))
    assert list(shard_range(6, 1, 2, align=4)) == [4, 5]
    assert shard_range(6, 1, 2, align=1) == range(3, 6)
