"""Compiled loops of the segment metrics (numba): the per-pixel pass and the per-atom sums.

Each kernel does in one pass over memory what would otherwise take one numpy pass per operation
and class; each gives exactly the values of the numpy expressions named in its docstring
(integer operations, float32 additions in the reference's order, float64 sums). Compiled on
first use and cached beside this module (``cache=True``); they release the GIL.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["atom_sums", "scan_float16", "screen_mask", "screen_table", "top3"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
#: Pixels per block of :func:`top3` (its running maxima stay in cache).
_BLOCK = 4096


@numba.njit(**_JIT)
def _top3_block(bits: np.ndarray, j0: int, n: int, a: np.ndarray, b: np.ndarray, t: np.ndarray,
                idx: np.ndarray) -> None:
    """:func:`top3` of the columns ``j0 .. j0 + n`` of ``bits`` into ``a``, ``b``, ``t``, ``idx`` (length n)."""
    r = bits[0, j0:j0 + n]
    for j in range(n):
        a[j] = r[j]
        b[j] = 0
        t[j] = 0
        idx[j] = 0
    for k in range(1, bits.shape[0]):
        r = bits[k, j0:j0 + n]
        for j in range(n):
            v, aj, bj = r[j], a[j], b[j]
            # each rank becomes max(itself, min(the rank above, v))
            t[j] = max(t[j], min(bj, v))
            b[j] = max(bj, min(aj, v))
            idx[j] = k if v > aj else idx[j]
            a[j] = max(aj, v)


@numba.njit(**_JIT)
def top3(bits: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, arg: np.ndarray) -> None:
    """Per column of ``bits`` (C, N) unsigned: the largest, second and third largest value (ties count
    repeatedly) into ``p1``, ``p2``, ``p3`` and the first index of the largest into ``arg``."""
    n_all = bits.shape[1]
    for j0 in range(0, n_all, _BLOCK):
        n = min(n_all, j0 + _BLOCK) - j0
        _top3_block(bits, j0, n, p1[j0:j0 + n], p2[j0:j0 + n], p3[j0:j0 + n], arg[j0:j0 + n])


def screen_table(corners: list[tuple[int, int]], mantissa: int) -> np.ndarray:
    """Per octave difference ``o = (p1 - p2) >> mantissa`` (clipped to the table), the smallest bit
    difference ``p1 - p3`` that settles a pixel with some corner ``(a, b)``, ``a <= o`` (else above
    every difference). Corners: :func:`~meta_ood.segments.pixels.screen_corners`."""
    size = max((a for a, _ in corners), default=0) + 1
    need = np.full(size, np.iinfo(np.int64).max, np.int64)
    for a, b in corners:
        need[a:] = np.minimum(need[a:], b << mantissa)
    return need


@numba.njit(**_JIT)
def screen_mask(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, need: np.ndarray, mantissa: int,
                out: np.ndarray) -> None:
    """Clear ``out`` where ``p1 - p3 >= need[min((p1 - p2) >> mantissa, len(need) - 1)]`` (bit patterns):
    a corner of the screening settles the pixel (:func:`screen_table`)."""
    last = need.size - 1
    for j in range(p1.size):
        a = np.int64(p1[j])
        o = min((a - np.int64(p2[j])) >> mantissa, last)
        if a - np.int64(p3[j]) >= need[o]:
            out[j] = False


@numba.njit(**_JIT)
def _add_moments(row: np.ndarray, e: float, d: float, v: float) -> None:
    """Add a pixel to ``row[:7]``: count, E, E^2, D, D^2, V, V^2."""
    row[0] += 1.0
    row[1] += e
    row[2] += e * e
    row[3] += d
    row[4] += d * d
    row[5] += v
    row[6] += v * v


@numba.njit(**_JIT)
def atom_sums(key_tot: np.ndarray, key_in: np.ndarray, cand: np.ndarray, e: np.ndarray, d: np.ndarray,
              v: np.ndarray, gt_flat: np.ndarray, width: int, probs: np.ndarray, table: np.ndarray | None,
              tot: np.ndarray, inn: np.ndarray) -> None:
    """Per-atom sums of the candidates (``cand``: flat image indices; every array in candidate order).

    ``tot[key_tot[q]]`` (bins x (10 + C)) gets count, E, E^2, D, D^2, V, V^2, row, column, OoD ground
    truth and the class probabilities (``probs`` (C, N): float32 values, or float16 bit patterns with
    ``table`` their float64 values); ``inn[key_in[q]]`` (bins x 7) the first seven. ``e``, ``d``,
    ``v``: float32 values of the candidates.
    """
    c = probs.shape[0]
    for q in range(cand.size):
        j = cand[q]
        ev, dv, vv = np.float64(e[q]), np.float64(d[q]), np.float64(v[q])
        row = tot[key_tot[q]]
        _add_moments(row, ev, dv, vv)
        r = j // width
        row[7] += r
        row[8] += j - r * width
        row[9] += 1.0 if gt_flat[j] else 0.0
        if table is None:
            for k in range(c):
                row[10 + k] += np.float64(probs[k, j])
        else:
            for k in range(c):
                row[10 + k] += table[probs[k, j]]
        _add_moments(inn[key_in[q]], ev, dv, vv)


@numba.njit(**_JIT)
def scan_float16(bits: np.ndarray, void: np.ndarray, need: np.ndarray, values: np.ndarray, terms: np.ndarray,
                 log_inv_c: np.float32, inv_log_c: np.float32, levels: np.ndarray, margin: np.float32,
                 arg: np.ndarray, cand: np.ndarray, lev: np.ndarray, heat: np.ndarray, undecided: np.ndarray,
                 heat_u: np.ndarray) -> tuple[int, int, int, int]:
    """The pixel pass of float16 probabilities (bit patterns ``bits`` (C, N)) in blocks that stay in cache.

    Per block: :func:`top3` (first argmax into ``arg``), the screen (``need``: :func:`screen_table`, 10
    mantissa bits) of the non-``void`` pixels, and for the rest the reference entropy from the
    tables ``values`` (float32 of every bit pattern) and ``terms`` (its ``x * log(x + eps)``, computed by
    numpy; summed in float32 in class order, as the reference adds) and the estimated level of
    :func:`~meta_ood.segments.pixels._estimated_levels`. Pixels whose estimate settles a level >= 0 go to ``cand`` / ``lev`` / ``heat`` (rows E, D, V: the reference's
    entropy, ``float32((1 - p1) + p2)`` and ``float32(1 - p1)`` rounded once from float64), those it does
    not settle to ``undecided`` / ``heat_u``, in row-major order. Returns the numbers of both and the
    smallest and largest top bit pattern (:func:`~meta_ood.segments.pixels._bits_ok` of all pixels).
    """
    c, n_all = bits.shape
    a = np.empty(_BLOCK, bits.dtype)
    b = np.empty(_BLOCK, bits.dtype)
    t = np.empty(_BLOCK, bits.dtype)
    rest = np.empty(_BLOCK, np.int64)  # block positions of the pixels the screen leaves
    e_sum = np.empty(_BLOCK, np.float32)
    p_sum = np.empty(_BLOCK, np.float32)
    last = need.size - 1
    lo = levels[0] - margin
    n_cand = 0
    n_und = 0
    p1_min = 1 << 16
    p1_max = 0
    for j0 in range(0, n_all, _BLOCK):
        n = min(n_all, j0 + _BLOCK) - j0
        _top3_block(bits, j0, n, a, b, t, arg[j0:j0 + n])
        m = 0
        for jj in range(n):
            top = np.int64(a[jj])
            p1_min = min(p1_min, top)
            p1_max = max(p1_max, top)
            if not void[j0 + jj] and top - np.int64(t[jj]) < need[min((top - np.int64(b[jj])) >> 10, last)]:
                rest[m] = jj
                m += 1
        # class by class over the block's remaining pixels (independent additions, each pixel's in class order)
        r = bits[0, j0:j0 + n]
        for i in range(m):
            e_sum[i] = terms[r[rest[i]]]
            p_sum[i] = values[r[rest[i]]]
        for k in range(1, c):
            r = bits[k, j0:j0 + n]
            for i in range(m):
                bk = r[rest[i]]
                e_sum[i] += terms[bk]
                p_sum[i] += values[bk]
        for i in range(m):
            jj = rest[i]
            e = e_sum[i] / log_inv_c
            s = p_sum[i]
            est = np.log(s)
            est -= e * log_inv_c / s
            est *= inv_log_c
            near = not (s > np.float32(0.25) and s < np.float32(4.0))
            if est < lo and not near:
                continue
            level = -1
            for th in levels:
                level += est >= th
                near |= abs(est - th) < margin
            if not near and level < 0:
                continue
            p1 = np.float64(values[a[jj]])
            d = np.float32((1.0 - p1) + np.float64(values[b[jj]]))
            v = np.float32(1.0 - p1)
            if near:
                undecided[n_und] = j0 + jj
                heat_u[0, n_und] = e
                heat_u[1, n_und] = d
                heat_u[2, n_und] = v
                n_und += 1
            else:
                cand[n_cand] = j0 + jj
                lev[n_cand] = level
                heat[0, n_cand] = e
                heat[1, n_cand] = d
                heat[2, n_cand] = v
                n_cand += 1
    return n_cand, n_und, p1_min, p1_max


@numba.njit(**_JIT)
def boundary_pairs(bpos: np.ndarray, bfp: np.ndarray, bimg: np.ndarray, blev: np.ndarray, lev_flat: np.ndarray,
                   offsets: np.ndarray, img_offsets: np.ndarray, argmax: np.ndarray, nlev: int,
                   start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (boundary pixel, outside neighbour) pairs of all levels, sorted by key (counting sort).

    Boundary pixel ``i`` (level-order position ``bpos[i]``, window position ``bfp[i]``, image index
    ``bimg[i]``, level ``blev[i]``) pairs with each 8-neighbour ``q`` (window ``bfp + offsets``, image
    ``bimg + img_offsets``) of lower level ``lev_flat[q]`` (the outside ring: 127, never), under the key
    ``(lev(q) + 1) * nlev + nlev - 1 - lev(p)``. Returns the pairs' positions and the neighbours' classes
    (``argmax``, flat image); ``start`` (``(nlev + 1) * nlev + 1`` entries) gets the first pair of each key.
    """
    nbins = (nlev + 1) * nlev
    count = np.zeros(nbins + 1, np.int64)
    for i in range(bpos.size):
        lp = np.int64(blev[i])
        for o in range(offsets.size):
            lq = np.int64(lev_flat[bfp[i] + offsets[o]])
            if lq < lp:
                count[(lq + 1) * nlev + nlev - lp] += 1  # counts shifted by one: prefix sums give starts
    for k in range(nbins):
        count[k + 1] += count[k]
    start[:] = count
    fill = count[:nbins].copy()
    pos = np.empty(count[nbins], np.int64)
    cls = np.empty(count[nbins], argmax.dtype)
    for i in range(bpos.size):
        lp = np.int64(blev[i])
        for o in range(offsets.size):
            lq = np.int64(lev_flat[bfp[i] + offsets[o]])
            if lq < lp:
                k = (lq + 1) * nlev + nlev - 1 - lp
                pos[fill[k]] = bpos[i]
                cls[fill[k]] = argmax[bimg[i] + img_offsets[o]]
                fill[k] += 1
    return pos, cls


@numba.njit(**_JIT)
def _root(parent: np.ndarray, x: int) -> int:
    """Root of ``x`` in the union-find forest ``parent`` (path halving)."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(**_JIT)
def label_level(pos: np.ndarray, lev: np.ndarray, count: int, level: int, labels: np.ndarray,
                stride: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """8-connected components of the pixels of ``pos`` with ``lev >= level``, written into the window label map
    ``labels`` (flat, row stride ``stride``) and numbered in row-major order of their first pixel, as
    :func:`scipy.ndimage.label` numbers them.

    ``pos[:count]`` / ``lev[:count]``: window positions in row-major order and their levels, the pixels of the
    previous call (level - 1) or all; ``labels`` holds that call's labels and 0 elsewhere, and the positions
    must keep a zero ring around them. The pixels below ``level`` are cleared in ``labels`` and dropped from
    the front of ``pos`` / ``lev`` (for the next level). Returns the number of pixels kept, of components, and
    per component (index 1..n) its first position and its size.
    """
    kept = 0
    for k in range(count):
        if lev[k] < level:
            labels[pos[k]] = 0
        else:
            pos[kept] = pos[k]
            lev[kept] = lev[k]
            kept += 1
    parent = np.empty(kept + 1, np.int64)
    n_prov = 0
    for k in range(kept):
        x = pos[k]
        cur = 0
        for nb in (x - stride - 1, x - stride, x - stride + 1, x - 1):  # the neighbours already labelled
            lab = labels[nb]
            if lab == 0:
                continue
            r = _root(parent, lab)
            if cur == 0:
                cur = r
            elif r != cur:
                if r < cur:
                    parent[cur] = r
                    cur = r
                else:
                    parent[r] = cur
        if cur == 0:
            n_prov += 1
            parent[n_prov] = n_prov
            cur = n_prov
        labels[x] = cur
    final = np.zeros(n_prov + 1, np.int64)
    first = np.zeros(kept + 1, np.int64)
    size = np.zeros(kept + 1, np.int64)
    n = 0
    for k in range(kept):
        x = pos[k]
        r = _root(parent, labels[x])
        if final[r] == 0:
            n += 1
            final[r] = n
            first[n] = x
        labels[x] = final[r]
        size[final[r]] += 1
    return kept, n, first[:n + 1], size[:n + 1]


@numba.njit(**_JIT)
def level_pass(level: int, lab: np.ndarray, img: np.ndarray, ilev: np.ndarray, order: np.ndarray, e: np.ndarray,
               d: np.ndarray, v: np.ndarray, base: int, m_next: int, prev_lab: np.ndarray, has_prev: bool,
               comp: np.ndarray, key_tot: np.ndarray, key_in: np.ndarray, parent: np.ndarray,
               bd: np.ndarray) -> None:
    """The per-pixel work of the predicted segments of one level, over its pixels in level order.

    Pixel ``p`` (segment ``lab[p]``, image index ``img[p]``, interior up to level ``ilev[p]``, candidate
    ``order[p]``) goes into the component map ``comp`` (flat; negative on the boundary, ``ilev < level``),
    boundary pixels into ``bd[lab]`` (count, E, E^2, D, D^2, V, V^2 of the candidate's float32 ``e``, ``d``,
    ``v``), its atom keys ``base + lab`` into ``key_in`` (interior up to this level) and ``key_tot`` (from
    ``m_next`` on: no deeper level), and with ``has_prev`` its segment's parent ``prev_lab[p]`` into ``parent``.
    """
    for p in range(lab.size):
        seg = lab[p]
        il = ilev[p]
        if il < level:
            comp[img[p]] = -seg
            q = order[p]
            _add_moments(bd[seg], np.float64(e[q]), np.float64(d[q]), np.float64(v[q]))
        else:
            comp[img[p]] = seg
        if il == level:
            key_in[p] = base + seg
        if p >= m_next:
            key_tot[p] = base + seg
        if has_prev:
            parent[seg] = prev_lab[p]
