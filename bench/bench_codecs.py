"""Benchmark: compression codecs for the class planes of the softmax store, on one thread.

The store keeps per image a (C, H, W) uint16 ``fixed16`` array (``round(p * 65535)``), one class
plane per HDF5 chunk, today byte-shuffled and deflated at zlib level 1. This script measures the
candidate replacements on the synthetic maps of ``bench_store.py`` (quantization is common to all
options and not timed):

* byte shuffle + zlib 1 (the baseline), byte shuffle + zstd -5 / -1 / 1 / 3, byte shuffle + LZ4,
  in the byte layout of HDF5's shuffle filter followed by deflate / hdf5plugin's Zstd / LZ4;
* blosc2 (LZ4 and ZSTD, SHUFFLE and BITSHUFFLE, clevel 1 and 5) as a super-chunk frame, the
  layout of hdf5plugin's Blosc2 filter.

Per option: bytes per pixel of the compressed planes and their ratio to float32 (4 C B/pixel),
compress time per image (shuffle + compress), decompress time per image (decompress + unshuffle
to the uint16 planes), best of ``--repeat``, and an exact round trip. ``hdf5`` says whether
h5py (with hdf5plugin loaded) reads a chunk written with ``write_direct_chunk`` back exactly. A
second table gives the two score planes of a new store: uint16 codes of the normalized entropy
and the uint8 argmax. lz4 and blosc2 are optional (their rows are skipped with a note).

    python bench/bench_codecs.py                      # 2 images of 1024 x 2048, 19 classes
    python bench/bench_codecs.py --images 1 --height 256 --width 512
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import torch
import zstandard

from meta_ood.store.codec import _shuffle, _unshuffle, lz4_chunk, lz4_unchunk, quantize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import normalized_entropy, synthetic_softmax  # noqa: E402

try:
    import lz4.block as lz4_block
except ImportError:  # optional
    lz4_block = None
try:
    import blosc2
except ImportError:  # optional
    blosc2 = None


@dataclass
class Codec:
    """One option: a stored plane -> an HDF5 chunk and back, and the matching HDF5 filter pipeline."""

    name: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes, np.dtype, tuple[int, ...]], np.ndarray]
    hdf5: dict[str, Any]  # create_dataset keyword arguments


def shuffled(name: str, comp: Callable[[Any], bytes], decomp: Callable[[bytes], bytes], hdf5: Any) -> Codec:
    """HDF5 shuffle followed by a byte compressor ``comp`` / ``decomp`` (filter ``hdf5``)."""
    return Codec(name, lambda a: comp(_shuffle(a)), lambda b, dt, sh: _unshuffle(decomp(b), dt, sh),
                 {"shuffle": True, **hdf5})


def lz4_compress(raw: np.ndarray) -> bytes:
    """hdf5plugin's LZ4 chunk ('>qi' size and block size, then the block's '>i' length and data), as the store writes it."""
    return lz4_chunk(raw)


def lz4_decompress(blob: bytes) -> bytes:
    """Invert :func:`lz4_compress` (any number of blocks)."""
    return lz4_unchunk(blob)


def blosc2_codec(cname: str, filt: str, clevel: int) -> Codec:
    """A blosc2 super-chunk frame holding the plane as one chunk (blosc2 shuffles internally)."""
    codec, flt = getattr(blosc2.Codec, cname.upper()), getattr(blosc2.Filter, filt)

    def encode(a: np.ndarray) -> bytes:
        cparams = {"codec": codec, "clevel": clevel, "filters": [flt], "typesize": a.itemsize, "nthreads": 1}
        return blosc2.SChunk(chunksize=a.nbytes, data=a, cparams=cparams).to_cframe()

    def decode(b: bytes, dt: np.dtype, sh: tuple[int, ...]) -> np.ndarray:
        out = np.empty(sh, dt)
        blosc2.schunk_from_cframe(b, copy=False).get_slice(0, out=out)
        return out

    pipe = hdf5plugin.Blosc2(cname=cname, clevel=clevel, filters=getattr(hdf5plugin.Blosc2, filt))
    return Codec(f"blosc2 {cname} {filt.lower()} {clevel}", encode, decode, dict(pipe))


def codecs() -> list[Codec]:
    """All options; the optional ones only where their package imports."""
    dz = zstandard.ZstdDecompressor()
    out = [shuffled("shuffle + zlib 1 (today)", lambda b: zlib.compress(b, 1), zlib.decompress,
                    {"compression": "gzip", "compression_opts": 1})]
    for lvl in (-5, -1, 1, 3):
        out.append(shuffled(f"shuffle + zstd {lvl}", zstandard.ZstdCompressor(level=lvl).compress, dz.decompress,
                            dict(hdf5plugin.Zstd(clevel=lvl))))
    if lz4_block is None:
        print("note: lz4 cannot be imported; skipping shuffle + LZ4")
    else:
        out.append(shuffled("shuffle + lz4", lz4_compress, lz4_decompress, dict(hdf5plugin.LZ4())))
    if blosc2 is None:
        print("note: blosc2 cannot be imported; skipping the blosc2 rows")
    else:
        out += [blosc2_codec(c, f, lvl) for c in ("lz4", "zstd") for f in ("SHUFFLE", "BITSHUFFLE") for lvl in (1, 5)]
    return out


def hdf5_readable(codec: Codec, planes: Sequence[np.ndarray], folder: Path) -> bool:
    """Write each plane as one chunk with ``write_direct_chunk``; does h5py read it back exactly?"""
    try:
        for k, plane in enumerate(planes):
            path = folder / f"{codec.name.replace(' ', '_')}_{k}.h5"
            with h5py.File(path, "w") as f:
                ds = f.create_dataset("x", shape=(1, *plane.shape), dtype=plane.dtype, chunks=(1, *plane.shape),
                                      **codec.hdf5)
                ds.id.write_direct_chunk((0, 0, 0), codec.encode(plane))
            with h5py.File(path, "r") as f:
                if not np.array_equal(f["x"][0], plane):
                    return False
        return True
    except Exception as exc:  # a filter that cannot decode the chunk
        print(f"note: {codec.name}: HDF5 read failed: {type(exc).__name__}: {exc}")
        return False


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall-clock seconds of ``repeat`` calls of ``fn`` and the result of the last call."""
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def measure(codec: Codec, images: Sequence[Sequence[np.ndarray]], repeat: int) -> tuple[int, float, float, bool]:
    """Total compressed bytes, mean compress / decompress seconds per image and exactness."""
    nbytes, tc, td, exact = 0, 0.0, 0.0, True
    for planes in images:
        t, blobs = best_time(lambda: [codec.encode(p) for p in planes], repeat)
        tc += t
        t, back = best_time(lambda: [codec.decode(b, p.dtype, p.shape) for b, p in zip(blobs, planes)], repeat)
        td += t
        nbytes += sum(len(b) for b in blobs)
        exact &= all(np.array_equal(q, p) for q, p in zip(back, planes))
    return nbytes, tc / len(images), td / len(images), exact


def main() -> None:
    """Measure every option on the probability planes and the score planes and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--repeat", type=int, default=2, help="timing runs per image (the best counts)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if blosc2 is not None:
        blosc2.set_nthreads(1)

    n, h, w, c = args.images, args.height, args.width, args.classes
    probs, scores, conf = [], [], []
    for k in range(n):
        p = synthetic_softmax(h, w, c, seed=k)
        conf.append(float((p.max(0) > 0.99).mean()))
        probs.append(np.stack([quantize(p[j], "fixed16") for j in range(c)]))
        ent = np.floor(np.clip(normalized_entropy(p), 0.0, 1.0) * 65535 + 0.5).astype(np.uint16)
        scores.append((ent, p.argmax(0).astype(np.uint8)))
    small = synthetic_softmax(64, 128, c, seed=n)
    check = [quantize(small[int(small.mean((1, 2)).argmax())], "fixed16"), small.argmax(0).astype(np.uint8)]
    px, f32 = n * h * w, 4.0 * c
    print(f"{n} synthetic softmax maps {c} x {h} x {w} ({np.mean(conf):.1%} of pixels with max p > 0.99), fixed16, "
          f"one plane per chunk, one thread, best of {args.repeat}; float32 = {f32:.0f} B/pixel\n")

    rows, score_rows, exact_all = [], [], True
    with tempfile.TemporaryDirectory(prefix="bench_codecs.") as tmp:
        for cd in codecs():
            nbytes, tc, td, exact = measure(cd, probs, args.repeat)
            ok = hdf5_readable(cd, check, Path(tmp))
            s16 = measure(cd, [[s[0]] for s in scores], args.repeat)
            s8 = measure(cd, [[s[1]] for s in scores], args.repeat)
            if not (exact and s16[3] and s8[3]):
                print(f"note: {cd.name}: round trip NOT exact")
                exact_all = False
            rows.append((cd.name, nbytes / px, tc, td, ok))
            score_rows.append((cd.name, s16[0] / px, s16[1], s8[0] / px, s8[1]))

    print("| option | B/pixel | ratio to float32 | compress ms | decompress ms | hdf5 |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, bpp, tc, td, ok in rows:
        print(f"| {name} | {bpp:.3f} | {bpp / f32:.4f} | {tc * 1e3:.0f} | {td * 1e3:.0f} | {'yes' if ok else 'no'} |")
    print(f"\nround trip exact for every option and plane: {'yes' if exact_all else 'NO'}\n")
    print("Score planes (one chunk each), per image:\n")
    print("| option | entropy u16 B/pixel | entropy compress ms | argmax u8 B/pixel | argmax compress ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, b16, t16, b8, t8 in score_rows:
        print(f"| {name} | {b16:.3f} | {t16 * 1e3:.1f} | {b8:.4f} | {t8 * 1e3:.1f} |")
    by_name = {r[0]: r for r in rows}
    zl, zs = by_name["shuffle + zlib 1 (today)"], by_name["shuffle + zstd 1"]
    print(f"\nbench_codecs: {zl[2] / zs[2]:.2f}x compress speed of shuffle+zstd 1 over shuffle+zlib 1 "
          f"at {zs[1]:.2f} B/pixel")


if __name__ == "__main__":
    main()
