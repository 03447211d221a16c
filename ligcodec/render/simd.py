"""Explicit SIMD row operations for the forward kernel, written as numba intrinsics in LLVM IR.

Why: the span loops in :mod:`.kernels` left vectorisation to LLVM, which wraps every row in a
prologue (slice bounds, runtime alias checks between the channel rows, trip-count dispatch to a
16-, 4- or 1-wide loop). At reduced scale most rows are 2-7 px long, so that prologue cost more
than the arithmetic. These intrinsics are straight-line vector code of a fixed width with the
padding masked off, so a row costs a handful of vector instructions.

Every operation is a plain ``fmul``/``fadd``/``fsub`` without fast-math flags, or an explicit
``llvm.fma`` (exactly rounded): LLVM neither reassociates nor contracts them, so results are
the same on every run and in every process (see ``FASTMATH`` in :mod:`.kernels`). The tiled path's
operations (:data:`HORNER`) are those of :func:`.kernels._exp_half_neg`, operation for
operation; the banded path's (:data:`FUSED`) evaluate the same polynomial with fewer.

All pointers are element offsets into contiguous float32 arrays; the caller guarantees that
``off + width`` stays inside the array (the tile buffer has :data:`.kernels.LANES` columns of
slack).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_F32 = ir.FloatType()
_F64 = ir.DoubleType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
#: Coefficients of the exp(-q/2) polynomial (Horner order after the leading 1/720), as in
#: kernels._exp_half_neg.
_POLY = (1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0)


def _vconst(ty, n, values):
    return ir.Constant(ir.VectorType(ty, n), [ir.Constant(ty, v) for v in values])


def _splat(builder, x, ty, n):
    undef = ir.Constant(ir.VectorType(ty, n), ir.Undefined)
    v = builder.insert_element(undef, x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(_I32, n), [0] * n))


def _f32c(n, x):
    return _vconst(_F32, n, [float(np.float32(x))] * n)


def _exp_half_neg_vec(builder, q, n):
    """exp(-q/2) of a float32 vector ``q`` in [0, ~9.5], exactly as ``_exp_half_neg``."""
    u = builder.fmul(q, _f32c(n, -1.0 / 32.0))
    p = _f32c(n, 1.0 / 720.0)
    for c in _POLY:
        p = builder.fadd(builder.fmul(p, u), _f32c(n, c))
    for _ in range(4):
        p = builder.fmul(p, p)
    return p


def _fma(builder, a, b, c):
    """``llvm.fma`` of vectors (llvmlite's ``builder.fma`` takes scalars only). Exactly rounded
    everywhere: a CPU without FMA instructions (x86 before 2013) gets libm's ``fma``, the same
    results, only slower."""
    ty = a.type
    name = f"llvm.fma.v{ty.count}{'f32' if ty.element == _F32 else 'f64'}"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty] * 3), name)
    return builder.call(fn, [a, b, c])


def _exp_half_neg_vec_fused(builder, q, n):
    """The same degree-6 polynomial and four squarings as :func:`_exp_half_neg_vec`, evaluated
    by Estrin's scheme with fused multiply-adds: 5 dependent steps instead of Horner's 12, and 13
    operations instead of 17. Small boxes are bound by this chain (the banded path draws ~7 %
    faster with Estrin, ~5-9 % more with the FMAs). It rounds differently from Horner (same
    ~5e-7 relative error), so only the banded path uses it: the tiled path, hence the encoder's
    fits, keeps Horner."""
    u = builder.fmul(q, _f32c(n, -1.0 / 32.0))
    u2 = builder.fmul(u, u)
    u4 = builder.fmul(u2, u2)
    a01 = builder.fadd(u, _f32c(n, 1.0))
    a23 = _fma(builder, u, _f32c(n, 1.0 / 6.0), _f32c(n, 0.5))
    a45 = _fma(builder, u, _f32c(n, 1.0 / 120.0), _f32c(n, 1.0 / 24.0))
    a46 = _fma(builder, u2, _f32c(n, 1.0 / 720.0), a45)
    p = _fma(builder, u4, a46, _fma(builder, u2, a23, a01))
    for _ in range(4):
        p = builder.fmul(p, p)
    return p


class _Ops:
    """How the row intrinsics compute: ``exp(builder, q32, n)``; ``fused``: whether ``q`` and the
    channel updates ``dst + c w`` use fused multiply-adds."""

    def __init__(self, exp, fused):
        self.exp, self.fused = exp, fused

    def madd(self, builder, a, b, c):
        """``a b + c``."""
        return _fma(builder, a, b, c) if self.fused else builder.fadd(builder.fmul(a, b), c)

    def acc(self, builder, old, c, w):
        """``old + c w`` (the order of the unfused form is the tiled path's)."""
        return _fma(builder, c, w, old) if self.fused else builder.fadd(old, builder.fmul(c, w))


#: The tiled path's operations (the encoder's fits and the decoder: keep them bit for bit).
HORNER = _Ops(_exp_half_neg_vec, False)
#: The banded path's (:mod:`.banded`): Estrin, and fused multiply-adds throughout.
FUSED = _Ops(_exp_half_neg_vec_fused, True)


def _vec_ptr(context, builder, aryty, ary, off, vty):
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [off]), vty.as_pointer())


def _column_index(builder, j0v, col, n):
    """``float64(j0 + col[lane])`` of the int64 scalar ``j0`` and the constant int64 vector ``col``:
    one scalar conversion plus the lanes' offsets as float64 constants. The same bits as converting
    the int64 vector ``j0 + col`` (integers below 2^53 add exactly), but AVX2 has no vector
    int64 -> float64 conversion: LLVM converted lane by lane, in the wide backward once per row and
    16-column chunk (BENCHMARKS.md, twenty-sixth session)."""
    offsets = _vconst(_F64, n, [float(c.constant) for c in col.constant])
    return builder.fadd(_splat(builder, builder.sitofp(j0v, _F64), _F64, n), offsets)


def _columns_vec(builder, j0v, mxv, av, col, n):
    """``(dx, a dx)`` in registers, float64: ``dx = (j0 + col[lane] + 0.5) - mx``, the column set-up of
    every box path (stored by :func:`_box_columns_intrinsic`, kept in registers by the others)."""
    d = builder.fadd(_column_index(builder, j0v, col, n), _vconst(_F64, n, [0.5] * n))
    d = builder.fsub(d, _splat(builder, mxv, _F64, n))
    return d, builder.fmul(_splat(builder, av, _F64, n), d)


def _box_columns_intrinsic(n, col):
    """An intrinsic ``(dx, adx, j0, mx, a)``: ``dx[:n] = (j0 + col[lane] + 0.5) - mx`` and
    ``adx[:n] = a dx`` (float64), the per-Gaussian set-up shared by all rows of a box."""
    vd = ir.VectorType(_F64, n)
    zero = ir.Constant(_I64, 0)

    @intrinsic
    def box_columns(typingctx, dx, adx, j0, mx, a):
        sig = types.void(dx, adx, j0, mx, a)

        def codegen(context, builder, signature, args):
            dxa, adxa, j0v, mxv, av = args
            d, ad = _columns_vec(builder, j0v, mxv, av, col, n)
            builder.store(d, _vec_ptr(context, builder, signature.args[0], dxa, zero, vd), align=8)
            builder.store(ad, _vec_ptr(context, builder, signature.args[1], adxa, zero, vd), align=8)
            return context.get_dummy_value()

        return sig, codegen

    return box_columns


def _acc_rgb(context, builder, aryty, da, off, plane, colours, w, ops):
    """IR of ``dst[off + k plane :][:len(w)] += colours[k] w`` for the three channels k (float32):
    the channel updates shared by every packing of rows into lanes."""
    _acc_rgb_ptr(builder, context.make_array(aryty)(context, builder, da).data, off, plane, colours, w, ops)


def _acc_rgb_ptr(builder, data, off, plane, colours, w, ops):
    """:func:`_acc_rgb` on the array's data pointer (float32)."""
    vw = w.type
    for cch in colours:
        pd = builder.bitcast(builder.gep(data, [off]), vw.as_pointer())
        new = ops.acc(builder, builder.load(pd, align=4), _splat(builder, cch, _F32, vw.count), w)
        builder.store(new, pd, align=4)
        off = builder.add(off, plane)


def _weights_ir(context, builder, types_dx, dxa, adxa, n, bvec, kvec, cutv, lane_ok, ops):
    """IR of ``n`` box weights: ``q = (adx + bvec) dx + kvec`` in float64 (``bvec``, ``kvec``: each
    lane's row's ``2 b dy`` and ``c dy^2``), weight ``exp(-q/2)`` where ``q <= cutoff`` and
    ``lane_ok``, else 0. Shared by every packing of rows into lanes, so a pixel's weight is the
    same whichever packing drew it."""
    zero = ir.Constant(_I64, 0)
    vd = ir.VectorType(_F64, n)
    d = builder.load(_vec_ptr(context, builder, types_dx[0], dxa, zero, vd), align=8)
    ad = builder.load(_vec_ptr(context, builder, types_dx[1], adxa, zero, vd), align=8)
    return _weights_vec(builder, d, ad, n, bvec, kvec, cutv, lane_ok, ops)


def _weights_vec(builder, d, ad, n, bvec, kvec, cutv, lane_ok, ops):
    """:func:`_weights_ir` on ``dx``, ``a dx`` already in registers."""
    q = ops.madd(builder, builder.fadd(ad, bvec), d, kvec)
    inside = builder.and_(builder.fcmp_ordered("<=", q, _splat(builder, cutv, _F64, n)), lane_ok)
    p = ops.exp(builder, builder.fptrunc(q, ir.VectorType(_F32, n)), n)
    return builder.select(inside, p, _f32c(n, 0.0))


def _make(n, ops=HORNER):
    vf = ir.VectorType(_F32, n)
    iota_f = _vconst(_F32, n, [float(i) for i in range(n)])
    iota_i = _vconst(_I64, n, list(range(n)))
    zero = ir.Constant(_I64, 0)

    def span_row(builder, t0v, q0v, q1v, q2v, nfv):
        """IR of one span chunk's weights (shared by :func:`span_weights` and
        :func:`span_weights_rgb`)."""
        t = builder.fadd(_splat(builder, t0v, _F32, n), iota_f)
        q = builder.fmul(t, _splat(builder, q2v, _F32, n))
        q = builder.fmul(t, builder.fadd(_splat(builder, q1v, _F32, n), q))
        q = builder.fadd(_splat(builder, q0v, _F32, n), q)
        p = ops.exp(builder, q, n)
        inside = builder.fcmp_ordered("<", t, _splat(builder, nfv, _F32, n))
        return builder.select(inside, p, _f32c(n, 0.0))

    @intrinsic
    def span_weights(typingctx, w, t0, q0, q1, q2, nf):
        """``w[:n] = exp(-q/2)``, ``q = q0 + t (q1 + t q2)`` (float32), ``t = t0 + lane``; 0 where
        ``t >= nf``. The weights of one span chunk, as the scalar span loop computed them."""
        sig = types.void(w, t0, q0, q1, q2, nf)

        def codegen(context, builder, signature, args):
            wa, t0v, q0v, q1v, q2v, nfv = args
            p = span_row(builder, t0v, q0v, q1v, q2v, nfv)
            builder.store(p, _vec_ptr(context, builder, signature.args[0], wa, zero, vf), align=4)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def span_weights_rgb(typingctx, dst, off, plane, c0, c1, c2, t0, q0, q1, q2, nf):
        """:func:`span_weights` fused with three :func:`axpy` (``dst[off + k plane :] += ck w``):
        the weights stay in registers instead of a store and three reloads."""
        sig = types.void(dst, off, plane, c0, c1, c2, t0, q0, q1, q2, nf)

        def codegen(context, builder, signature, args):
            da, offv, plv, c0v, c1v, c2v, t0v, q0v, q1v, q2v, nfv = args
            p = span_row(builder, t0v, q0v, q1v, q2v, nfv)
            _acc_rgb(context, builder, signature.args[0], da, offv, plv, (c0v, c1v, c2v), p, ops)
            return context.get_dummy_value()

        return sig, codegen

    # Per-Gaussian set-up of box_weights: dx = (j0 + lane + 0.5) - mx and a dx for all rows.
    box_columns = _box_columns_intrinsic(n, iota_i)

    def box_row(context, builder, types_dx, dxa, adxa, njv, bv, cv, cutv):
        """IR of one box row's weights (shared by :func:`box_weights` and :func:`box_weights_rgb`)."""
        lane_ok = builder.icmp_signed("<", iota_i, _splat(builder, njv, _I64, n))
        return _weights_ir(context, builder, types_dx, dxa, adxa, n, _splat(builder, bv, _F64, n),
                           _splat(builder, cv, _F64, n), cutv, lane_ok, ops)

    @intrinsic
    def box_weights(typingctx, w, dx, adx, nj, b2dy, cdy2, cutoff):
        """``w[:n]`` = weights of one row of a small Gaussian's box, columns as in
        :func:`box_columns`: ``q = (a dx + b2dy) dx + cdy2`` in float64 (``b2dy = 2 b dy``,
        ``cdy2 = c dy^2`` of the row), so q of a pixel does not depend on where a tile or region
        cuts the box. The weight is 0 where ``q > cutoff`` (the contract's support) or
        ``lane >= nj``."""
        sig = types.void(w, dx, adx, nj, b2dy, cdy2, cutoff)

        def codegen(context, builder, signature, args):
            wa, dxa, adxa, njv, bv, cv, cutv = args
            p = box_row(context, builder, signature.args[1:3], dxa, adxa, njv, bv, cv, cutv)
            builder.store(p, _vec_ptr(context, builder, signature.args[0], wa, zero, vf), align=4)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def box_weights_rgb(typingctx, dst, off, plane, c0, c1, c2, dx, adx, nj, b2dy, cdy2, cutoff):
        """:func:`box_weights` fused with three :func:`axpy` (``dst[off + k plane :] += ck w``)."""
        sig = types.void(dst, off, plane, c0, c1, c2, dx, adx, nj, b2dy, cdy2, cutoff)

        def codegen(context, builder, signature, args):
            da, offv, plv, c0v, c1v, c2v, dxa, adxa, njv, bv, cv, cutv = args
            p = box_row(context, builder, signature.args[6:8], dxa, adxa, njv, bv, cv, cutv)
            _acc_rgb(context, builder, signature.args[0], da, offv, plv, (c0v, c1v, c2v), p, ops)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def axpy(typingctx, dst, off, c, w):
        """``dst[off : off + n] += c * w[:n]`` (float32)."""
        sig = types.void(dst, off, c, w)

        def codegen(context, builder, signature, args):
            da, offv, cv, wa = args
            pw = _vec_ptr(context, builder, signature.args[3], wa, zero, vf)
            pd = _vec_ptr(context, builder, signature.args[0], da, offv, vf)
            x = ops.acc(builder, builder.load(pd, align=4), _splat(builder, cv, _F32, n),
                        builder.load(pw, align=4))
            builder.store(x, pd, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return span_weights, span_weights_rgb, box_columns, box_weights, box_weights_rgb, axpy


span_weights16, span_weights_rgb16, box_columns16, box_weights16, box_weights_rgb16, axpy16 = _make(16)
# The 8-wide rows take their columns from box_columns8x2 (first 8 lanes), so no box_columns8.
_, _, _, box_weights8, box_weights_rgb8, axpy8 = _make(8)


def _halves(builder, lo, hi, ty):
    """A 16-lane vector of ``ty`` holding the scalar ``lo`` in lanes 0-7 and ``hi`` in lanes 8-15:
    the per-row values of two rows packed into one vector."""
    mask = ir.Constant(ir.VectorType(_I32, 16), list(range(8)) + list(range(24, 32)))
    return builder.shuffle_vector(_splat(builder, lo, ty, 16), _splat(builder, hi, ty, 16), mask)


def _make_pairs(ops=HORNER):
    """Two rows of an 8-column box in one 16-lane vector: lanes 0-7 are row i, lanes 8-15 row
    i + 1, the same columns. Per lane the operations are those of :func:`box_weights8`, so a pixel
    gets the same weight either way; pairing halves the dependent exp-polynomial chains per box,
    which bound small boxes (their rows are too short to fill the out-of-order window)."""
    n = 16
    vf = ir.VectorType(_F32, n)
    col = _vconst(_I64, n, [i % 8 for i in range(n)])
    zero = ir.Constant(_I64, 0)
    box_columns8x2 = _box_columns_intrinsic(n, col)  # columns j0..j0+7, twice

    def pair_row(context, builder, types_dx, dxa, adxa, njv, b0, k0, b1, k1, cutv):
        lane_ok = builder.icmp_signed("<", col, _splat(builder, njv, _I64, n))
        return _weights_ir(context, builder, types_dx, dxa, adxa, n, _halves(builder, b0, b1, _F64),
                           _halves(builder, k0, k1, _F64), cutv, lane_ok, ops)

    @intrinsic
    def box_weights8x2(typingctx, w, dx, adx, nj, b0, k0, b1, k1, cutoff):
        """``w[:8]``, ``w[8:16]``: :func:`box_weights8` of two rows, ``(b0, k0)`` and ``(b1, k1)``
        being their ``(2 b dy, c dy^2)``; ``dx``, ``adx`` from :func:`box_columns8x2`."""
        sig = types.void(w, dx, adx, nj, b0, k0, b1, k1, cutoff)

        def codegen(context, builder, signature, args):
            wa, dxa, adxa, njv, b0v, k0v, b1v, k1v, cutv = args
            p = pair_row(context, builder, signature.args[1:3], dxa, adxa, njv, b0v, k0v, b1v, k1v, cutv)
            builder.store(p, _vec_ptr(context, builder, signature.args[0], wa, zero, vf), align=4)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def box_weights_rgb8x2(typingctx, dst, off, stride, plane, c0, c1, c2, dx, adx, nj, b0, k0, b1, k1,
                           cutoff):
        """:func:`box_weights8x2` fused with the three channel updates of both rows
        (``dst[off + r stride + k plane :] += ck w_r``)."""
        sig = types.void(dst, off, stride, plane, c0, c1, c2, dx, adx, nj, b0, k0, b1, k1, cutoff)

        def codegen(context, builder, signature, args):
            da, offv, stv, plv, c0v, c1v, c2v, dxa, adxa, njv, b0v, k0v, b1v, k1v, cutv = args
            p = pair_row(context, builder, signature.args[7:9], dxa, adxa, njv, b0v, k0v, b1v, k1v, cutv)
            for half, o in ((range(8), offv), (range(8, 16), builder.add(offv, stv))):
                wr = builder.shuffle_vector(p, p, ir.Constant(ir.VectorType(_I32, 8), list(half)))
                _acc_rgb(context, builder, signature.args[0], da, o, plv, (c0v, c1v, c2v), wr, ops)
            return context.get_dummy_value()

        return sig, codegen

    return box_columns8x2, box_weights8x2, box_weights_rgb8x2


box_columns8x2, box_weights8x2, box_weights_rgb8x2 = _make_pairs()


def _row_dy(builder, i, myv, half):
    """``dy = (i + half) - my`` of row ``i`` (float64), as ``kernels._box8_rows`` computes it."""
    return builder.fsub(builder.fadd(builder.sitofp(i, _F64), ir.Constant(_F64, half)), myv)


def _row_terms(builder, i, myv, b2v, cv, half):
    """``(2 b dy, c dy^2)`` of row ``i``, ``dy = (i + half) - my``: the float operations of
    ``kernels._box8_rows`` (``i + 0.5 - my``, ``b2 * dy``, ``c * dy * dy``)."""
    dy = _row_dy(builder, i, myv, half)
    return builder.fmul(b2v, dy), builder.fmul(builder.fmul(cv, dy), dy)


def _new_blocks(builder, prefix, *names):
    """Basic blocks ``prefix.name`` appended to the current function, for a loop's control flow."""
    return [builder.append_basic_block(f"{prefix}.{name}") for name in names]


def _emit_box8_rgb(builder, dptr, offv, stv, plv, cols, j0v, mxv, av, njv, myv, b2v, cv, i0v, i1v, cutv, ops):
    """IR drawing rows ``i0v..i1v`` of one RGB box at most 8 columns wide (columns ``j0v`` to
    ``j0v + njv - 1``, the first row at ``dptr[offv:]``, float32): rows two at a time as
    :func:`box_weights_rgb8x2` and an odd last row as :func:`box_weights_rgb8`, the same
    operations per lane, so the same pixels bit for bit. Leaves ``builder`` after the box."""
    n = 16
    col = _vconst(_I64, n, [i % 8 for i in range(n)])
    col8 = _vconst(_I64, 8, list(range(8)))
    lo_half = ir.Constant(ir.VectorType(_I32, 8), list(range(8)))
    hi_half = ir.Constant(ir.VectorType(_I32, 8), list(range(8, 16)))
    d, ad = _columns_vec(builder, j0v, mxv, av, col, n)
    lane_ok = builder.icmp_signed("<", col, _splat(builder, njv, _I64, n))
    entry = builder.basic_block
    cond_bb, body_bb, tail_bb, odd_bb, end_bb = _new_blocks(builder, "box8", "cond", "body", "tail", "odd",
                                                             "end")
    builder.branch(cond_bb)

    builder.position_at_end(cond_bb)
    i = builder.phi(_I64)
    o = builder.phi(_I64)
    i.add_incoming(i0v, entry)
    o.add_incoming(offv, entry)
    builder.cbranch(builder.icmp_signed("<", i, i1v), body_bb, tail_bb)

    builder.position_at_end(body_bb)
    b0, k0 = _row_terms(builder, i, myv, b2v, cv, 0.5)
    b1, k1 = _row_terms(builder, i, myv, b2v, cv, 1.5)
    p = _weights_vec(builder, d, ad, n, _halves(builder, b0, b1, _F64), _halves(builder, k0, k1, _F64), cutv,
                     lane_ok, ops)
    for half, oo in ((lo_half, o), (hi_half, builder.add(o, stv))):
        _acc_rgb_ptr(builder, dptr, oo, plv, cols, builder.shuffle_vector(p, p, half), ops)
    i.add_incoming(builder.add(i, ir.Constant(_I64, 2)), builder.basic_block)
    o.add_incoming(builder.add(o, builder.add(stv, stv)), builder.basic_block)
    builder.branch(cond_bb)

    builder.position_at_end(tail_bb)
    builder.cbranch(builder.icmp_signed("==", i, i1v), odd_bb, end_bb)

    builder.position_at_end(odd_bb)  # an odd row left: on its own, in 8 lanes
    bo, ko = _row_terms(builder, i, myv, b2v, cv, 0.5)
    ok8 = builder.icmp_signed("<", col8, _splat(builder, njv, _I64, 8))
    d8 = builder.shuffle_vector(d, d, lo_half)
    ad8 = builder.shuffle_vector(ad, ad, lo_half)
    bo8, ko8 = _splat(builder, bo, _F64, 8), _splat(builder, ko, _F64, 8)
    p8 = _weights_vec(builder, d8, ad8, 8, bo8, ko8, cutv, ok8, ops)
    _acc_rgb_ptr(builder, dptr, o, plv, cols, p8, ops)
    builder.branch(end_bb)
    builder.position_at_end(end_bb)


def _box8_block_function(module, ops, col_ty):
    """The LLVM function behind :func:`_make_box8_block`'s intrinsic, defined once per module.

    A function of its own, not inlined: inside the draw kernel (which holds every path) LLVM
    kept the arrays' pointers on the stack and rebuilt the constants and lane masks for every
    row pair; alone, its loops keep them in registers. Arguments: ``dst`` (band buffer),
    ``stride``, ``plane``, the data of ``box``, ``geo``, ``aux``, ``means``, ``colours`` (of LLVM
    type ``col_ty``, float or double), ``n`` (Gaussians), ``scale``, ``cutoff``, ``x0``, ``b0``,
    ``b1``, ``g0``, ``g1``."""
    name = f"ligcodec_box8_rgb_block_{'fused' if ops.fused else 'horner'}_{col_ty}"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    p32, p64, pi32 = _F32.as_pointer(), _F64.as_pointer(), _I32.as_pointer()
    fnty = ir.FunctionType(_I64, [p32, _I64, _I64, pi32, p64, p32, p64, col_ty.as_pointer(), _I64, _F64, _F64,
                                  _I64, _I64, _I64, _I64, _I64])
    fn = ir.Function(module, fnty, name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    for k in (0, 3, 4, 5, 6, 7):
        fn.args[k].add_attribute("noalias")
    dptr, stv, plv, boxp, geop, auxp, meansp, colp, nv, scv, cutv, x0v, b0v, b1v, g0v, g1v = fn.args
    builder = ir.IRBuilder(fn.append_basic_block("entry"))

    def at(ptr, row, g, width):
        """``ptr[row * width + g]``: element (row, g) of a C-ordered [rows, width] array."""
        idx = g if row == 0 else builder.add(builder.mul(ir.Constant(_I64, row), width), g)
        return builder.load(builder.gep(ptr, [idx]))

    def at_t(ptr, g, k, nk):
        """``ptr[g * nk + k]``: element (g, k) of a C-ordered [N, nk] array."""
        return builder.load(builder.gep(ptr, [builder.add(builder.mul(g, ir.Constant(_I64, nk)),
                                                          ir.Constant(_I64, k))]))

    entry = builder.basic_block
    blocks = _new_blocks(builder, "blk", "loop", "test", "small", "draw", "next", "exit")
    loop_bb, test_bb, small_bb, draw_bb, next_bb, exit_bb = blocks
    builder.branch(loop_bb)

    builder.position_at_end(loop_bb)
    g = builder.phi(_I64)
    g.add_incoming(g0v, entry)
    builder.cbranch(builder.icmp_signed("<", g, g1v), test_bb, exit_bb)

    builder.position_at_end(test_bb)
    i0 = builder.sext(at(boxp, 2, g, nv), _I64)
    i0 = builder.select(builder.icmp_signed(">", i0, b0v), i0, b0v)
    i1 = builder.sext(at(boxp, 3, g, nv), _I64)
    i1 = builder.select(builder.icmp_signed("<", i1, b1v), i1, b1v)
    j0 = builder.sext(at(boxp, 0, g, nv), _I64)
    j1 = builder.sext(at(boxp, 1, g, nv), _I64)
    empty = builder.or_(builder.icmp_signed(">", i0, i1), builder.icmp_signed(">", j0, j1))
    builder.cbranch(empty, next_bb, small_bb)

    builder.position_at_end(small_bb)  # not a small box: the caller draws it
    builder.cbranch(builder.fcmp_ordered("<", at(auxp, 1, g, nv), ir.Constant(_F32, 8.0)), draw_bb, exit_bb)

    builder.position_at_end(draw_bb)
    mx = builder.fmul(at_t(meansp, g, 0, 2), scv)  # as in setup
    my = builder.fmul(at_t(meansp, g, 1, 2), scv)
    amp = builder.fpext(at(auxp, 0, g, nv), _F64)
    # float32(colours[g, ch] * amp), in float64 as numba computes it
    cols = [at_t(colp, g, ch, 3) for ch in range(3)]
    cols = [v if v.type == _F64 else builder.fpext(v, _F64) for v in cols]
    cols = [builder.fptrunc(builder.fmul(v, amp), _F32) for v in cols]
    nj = builder.add(builder.sub(j1, j0), ir.Constant(_I64, 1))
    off = builder.add(builder.mul(builder.sub(i0, b0v), stv), builder.sub(j0, x0v))
    _emit_box8_rgb(builder, dptr, off, stv, plv, cols, j0, mx, at(geop, 0, g, nv), nj, my, at(geop, 1, g, nv),
                   at(geop, 2, g, nv), i0, i1, cutv, ops)
    builder.branch(next_bb)

    builder.position_at_end(next_bb)
    g.add_incoming(builder.add(g, ir.Constant(_I64, 1)), next_bb)
    builder.branch(loop_bb)

    builder.position_at_end(exit_bb)
    res = builder.phi(_I64)
    res.add_incoming(g, loop_bb)
    res.add_incoming(g, small_bb)
    builder.ret(res)
    return fn


def _make_box8_block(ops):
    """``box8_rgb_block``: the banded path's draw of consecutive RGB Gaussians whose boxes are at
    most 8 columns wide (:func:`_emit_box8_rgb` for each), in a function of its own
    (:func:`_box8_block_function`).

    Why in IR: as numba code, the per-Gaussian loads and the row loop shared one large function
    with every other path, so each Gaussian reloaded the arrays' pointers and strides from the
    stack, and each row pair rebuilt its constants, reloaded ``dx`` from a scratch array and
    spilled the loop's scalars."""

    @intrinsic
    def box8_rgb_block(typingctx, dst, stride, plane, box, geo, aux, means, colours, scale, cutoff, x0, b0,
                       b1, g0, g1):
        """Draw Gaussians ``g0, g0 + 1, ...`` (rows ``b0..b1`` of the band buffer ``dst``, whose
        column 0 is output column ``x0``) as :func:`banded._draw_band` would, and return the
        index of the first one that is not a small box (box width ``aux[1, g] >= 8``), or ``g1``.
        Gaussians whose box misses the band are skipped. C-ordered arrays: ``box [4, N]`` int32,
        ``geo [3, N]`` float64, ``aux [2, N]`` float32, ``means [N, 2]`` float64, ``colours [N, 3]``
        float32 or float64, ``dst`` float32."""
        f32, f64 = (types.float32,), (types.float64,)
        want = ((dst, f32), (box, (types.int32,)), (geo, f64), (aux, f32), (means, f64),
                (colours, f32 + f64))
        for ty, dtypes in want:
            if not (isinstance(ty, types.Array) and ty.layout == "C" and ty.dtype in dtypes):
                return None
        i64, f64 = types.int64, types.float64
        sig = types.int64(dst, i64, i64, box, geo, aux, means, colours, f64, f64, i64, i64, i64, i64, i64)

        def codegen(context, builder, signature, args):
            data = [context.make_array(ty)(context, builder, v).data if isinstance(ty, types.Array) else v
                    for ty, v in zip(signature.args, args)]
            box_ary = context.make_array(signature.args[3])(context, builder, args[3])
            nv = cgutils.unpack_tuple(builder, box_ary.shape, 2)[1]
            col_ty = _F32 if signature.args[7].dtype == types.float32 else _F64
            fn = _box8_block_function(builder.module, ops, col_ty)
            return builder.call(fn, data[:8] + [nv] + data[8:])

        return sig, codegen

    return box8_rgb_block


def _make_quads(ops=HORNER):
    """Four rows of a box at most 4 columns wide in one 16-lane vector (lanes 4r..4r+3: row r),
    like :func:`_make_pairs`. ``nr`` (1-4) rows are valid; the rest are neither weighted nor
    stored."""
    n = 16
    vf = ir.VectorType(_F32, n)
    col = _vconst(_I64, n, [i % 4 for i in range(n)])
    row = _vconst(_I64, n, [i // 4 for i in range(n)])
    zero = ir.Constant(_I64, 0)

    def per_row(builder, vals, ty):
        """A 16-lane vector holding ``vals[r]`` in the lanes of row r."""
        v = ir.Constant(ir.VectorType(ty, 4), ir.Undefined)
        for r in range(4):
            v = builder.insert_element(v, vals[r], ir.Constant(_I32, r))
        return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, n), [i // 4 for i in range(n)]))

    box_columns4x4 = _box_columns_intrinsic(n, col)  # columns j0..j0+3, four times

    def quad(context, builder, types_dx, dxa, adxa, njv, nrv, bk, cutv):
        lane_ok = builder.and_(builder.icmp_signed("<", col, _splat(builder, njv, _I64, n)),
                               builder.icmp_signed("<", row, _splat(builder, nrv, _I64, n)))
        return _weights_ir(context, builder, types_dx, dxa, adxa, n, per_row(builder, bk[0::2], _F64),
                           per_row(builder, bk[1::2], _F64), cutv, lane_ok, ops)

    @intrinsic
    def box_weights4x4(typingctx, w, dx, adx, nj, nr, b0, k0, b1, k1, b2, k2, b3, k3, cutoff):
        """``w[4r : 4r + 4]``: :func:`box_weights8`'s weights of row r (0-3), whose
        ``(2 b dy, c dy^2)`` is ``(br, kr)``; rows r >= ``nr`` get weight 0."""
        sig = types.void(w, dx, adx, nj, nr, b0, k0, b1, k1, b2, k2, b3, k3, cutoff)

        def codegen(context, builder, signature, args):
            wa, dxa, adxa, njv, nrv = args[:5]
            p = quad(context, builder, signature.args[1:3], dxa, adxa, njv, nrv, args[5:13], args[13])
            builder.store(p, _vec_ptr(context, builder, signature.args[0], wa, zero, vf), align=4)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def box_weights_rgb4x4(typingctx, dst, off, stride, plane, c0, c1, c2, dx, adx, nj, nr,
                           b0, k0, b1, k1, b2, k2, b3, k3, cutoff):
        """:func:`box_weights4x4` fused with the three channel updates of its ``nr`` rows."""
        sig = types.void(dst, off, stride, plane, c0, c1, c2, dx, adx, nj, nr, b0, k0, b1, k1, b2, k2, b3, k3,
                         cutoff)

        def codegen(context, builder, signature, args):
            da, offv, stv, plv, c0v, c1v, c2v, dxa, adxa, njv, nrv = args[:11]
            p = quad(context, builder, signature.args[7:9], dxa, adxa, njv, nrv, args[11:19], args[19])
            o = offv
            for r in range(4):
                lanes = ir.Constant(ir.VectorType(_I32, 4), list(range(4 * r, 4 * r + 4)))
                wr = builder.shuffle_vector(p, p, lanes)
                cond = builder.icmp_signed("<", ir.Constant(_I64, r), nrv)
                with builder.if_then(cond, likely=True):
                    _acc_rgb(context, builder, signature.args[0], da, o, plv, (c0v, c1v, c2v), wr, ops)
                o = builder.add(o, stv)
            return context.get_dummy_value()

        return sig, codegen

    return box_columns4x4, box_weights4x4, box_weights_rgb4x4


box_columns4x4, box_weights4x4, box_weights_rgb4x4 = _make_quads()
_, _, _, _, _, axpy4 = _make(4)

# The banded path's variants (see FUSED).
_, _, _, est_box_weights8, est_box_weights_rgb8, _ = _make(8, FUSED)
_, est_box_weights8x2, est_box_weights_rgb8x2 = _make_pairs(FUSED)
est_box8_rgb_block = _make_box8_block(FUSED)


def _tree_sum(builder, v):
    """Sum of a float32 vector by halving (a fixed order, so the same bits on every run), as
    float64."""
    n = v.type.count
    while n > 1:
        n //= 2
        lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, n), list(range(n))))
        hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, n), list(range(n, 2 * n))))
        v = builder.fadd(lo, hi)
    return builder.fpext(builder.extract_element(v, ir.Constant(_I32, 0)), _F64)


def _moment_sums(builder, es, ks, w, dx, dy, accs):
    """``accs[3:]`` (:data:`BOX_BACKWARD_SUMS`) plus the six moments of ``s = w <e, colours>``."""
    sw = builder.fmul(_fma(builder, es[2], ks[2], _fma(builder, es[1], ks[1], builder.fmul(es[0], ks[0]))), w)
    t = builder.fmul(sw, dx)
    u = builder.fmul(sw, dy)
    return [builder.fadd(accs[3], sw), builder.fadd(accs[4], t), _fma(builder, t, dx, accs[5]),
            builder.fadd(accs[6], u), _fma(builder, t, dy, accs[7]), _fma(builder, u, dy, accs[8])]


def _box_backward_function(module, ncols, chunked, colours_only):
    """The LLVM function behind :func:`box8_backward_rgb` (``ncols`` 8: two rows per 16-lane
    vector), :func:`box16_backward_rgb` (16: one row) and :func:`wide_backward_rgb` (16,
    ``chunked``: each row 16 columns at a time), a function of its own for the same reason as
    :func:`_box8_block_function`. Arguments: the gradient planes' data, row stride, plane size,
    ``y0``, ``x0``, ``i0``, ``i1``, ``j0``, ``nj``, ``mx``, ``my``, ``a``, ``2b``, ``c``, the
    three colours, ``cutoff`` and a pointer to the nine float64 sums. ``colours_only``
    (:func:`box8_colour_sums` etc.): the three colour sums alone, by the same operations; the
    other six are 0."""
    name = f"ligcodec_box{ncols}{'_wide' if chunked else ''}_backward_{'colours' if colours_only else 'rgb'}"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    p32 = _F32.as_pointer()
    args = [p32] + [_I64] * 8 + [_F64] * 5 + [_F32] * 3 + [_F64, _F64.as_pointer()]
    fnty = ir.FunctionType(ir.VoidType(), args)
    fn = ir.Function(module, fnty, name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fn.args[0].add_attribute("noalias")
    fn.args[-1].add_attribute("noalias")
    (planes, rsv, psv, y0v, x0v, i0v, i1v, j0v, njv, mxv, myv, av, b2v, cv, k0v, k1v, k2v, cutv,
     outp) = fn.args
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    n = 16
    nrows = n // ncols
    v16 = ir.VectorType(_F32, n)
    col = _vconst(_I64, n, [i % ncols for i in range(n)])
    row_of_lane = _vconst(_I64, n, [i // ncols for i in range(n)])
    vrow = ir.VectorType(_F32, ncols).as_pointer()

    def per_row(vals, ty):
        """A 16-lane vector holding ``vals[r]`` in the lanes of row r."""
        return _splat(builder, vals[0], ty, n) if nrows == 1 else _halves(builder, vals[0], vals[1], ty)

    def columns(c):
        """``dx``, ``a dx`` (float64), ``dx`` (float32) and the lanes inside the box, of the 16
        columns from ``j0 + c``."""
        d, ad = _columns_vec(builder, builder.add(j0v, c), mxv, av, col, n)
        lane_ok = builder.icmp_signed("<", col, _splat(builder, builder.sub(njv, c), _I64, n))
        return d, ad, builder.fptrunc(d, v16), lane_ok

    zero = ir.Constant(_I64, 0)
    if not chunked:  # one chunk of columns: set up once, not per row
        d, ad, dx, lane_ok = columns(zero)
    ks = [_splat(builder, k, _F32, n) for k in (k0v, k1v, k2v)]
    col0 = builder.sub(j0v, x0v)
    entry = builder.basic_block
    cond_bb, body_bb, end_bb = _new_blocks(builder, "bwd", "cond", "body", "end")
    builder.branch(cond_bb)

    builder.position_at_end(cond_bb)
    i = builder.phi(_I64)
    i.add_incoming(i0v, entry)
    c = builder.phi(_I64)  # the chunk's first column, relative to j0
    c.add_incoming(zero, entry)
    accs = [builder.phi(v16) for _ in BOX_BACKWARD_SUMS]
    for acc in accs:
        acc.add_incoming(_f32c(n, 0.0), entry)
    builder.cbranch(builder.icmp_signed("<=", i, i1v), body_bb, end_bb)

    builder.position_at_end(body_bb)
    if chunked:  # rows of any width, 16 columns at a time
        d, ad, dx, lane_ok = columns(c)
    # Rows i (and i + 1) in one vector; a row past the box weighs 0 and reads row i instead.
    row = builder.add(_splat(builder, i, _I64, n), row_of_lane)
    ok = builder.and_(lane_ok, builder.icmp_signed("<=", row, _splat(builder, i1v, _I64, n)))
    centres = [0.5 + r for r in range(nrows)]
    terms = [_row_terms(builder, i, myv, b2v, cv, h) for h in centres]
    bvec = per_row([t[0] for t in terms], _F64)
    kvec = per_row([t[1] for t in terms], _F64)
    w = _weights_vec(builder, d, ad, n, bvec, kvec, cutv, ok, HORNER)
    dy = per_row([builder.fptrunc(_row_dy(builder, i, myv, h), _F32) for h in centres], _F32)
    offs = []
    for r in range(nrows):
        row_r = builder.add(i, ir.Constant(_I64, r))
        row_r = builder.select(builder.icmp_signed("<=", row_r, i1v), row_r, i)  # past the box: row i
        offs.append(builder.add(builder.mul(builder.sub(row_r, y0v), rsv), builder.add(col0, c)))
    es = []
    for ch in range(3):
        base = builder.mul(ir.Constant(_I64, ch), psv)
        parts = [builder.load(builder.bitcast(builder.gep(planes, [builder.add(base, o)]), vrow), align=4)
                 for o in offs]
        both = ir.Constant(ir.VectorType(_I32, n), list(range(n)))
        es.append(parts[0] if nrows == 1 else builder.shuffle_vector(parts[0], parts[1], both))
    new = [_fma(builder, es[ch], w, accs[ch]) for ch in range(3)]
    # colours only: the moments' accumulators keep their zeros (LLVM drops the dead phis)
    new += accs[3:] if colours_only else _moment_sums(builder, es, ks, w, dx, dy, accs)
    for acc, v in zip(accs, new):
        acc.add_incoming(v, builder.basic_block)
    c_next = builder.add(c, ir.Constant(_I64, ncols))
    row_done = builder.icmp_signed(">=", c_next, njv)
    i.add_incoming(builder.select(row_done, builder.add(i, ir.Constant(_I64, nrows)), i), builder.basic_block)
    c.add_incoming(builder.select(row_done, zero, c_next), builder.basic_block)
    builder.branch(cond_bb)

    builder.position_at_end(end_bb)
    for k, acc in enumerate(accs):
        builder.store(_tree_sum(builder, acc), builder.gep(outp, [ir.Constant(_I64, k)]))
    builder.ret_void()
    return fn


def _make_box_backward(ncols, chunked=False, colours_only=False):
    @intrinsic
    def box_backward_rgb(typingctx, planes, y0, x0, i0, i1, j0, nj, mx, my, a, b2, c, k0, k1, k2, cutoff):
        if not (isinstance(planes, types.Array) and planes.layout == "C" and planes.dtype == types.float32
                and planes.ndim == 3):
            return None
        i64, f64, f32 = types.int64, types.float64, types.float32
        sig = types.UniTuple(f64, 9)(planes, i64, i64, i64, i64, i64, i64, f64, f64, f64, f64, f64, f32, f32,
                                     f32, f64)

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            _, rows, stride = cgutils.unpack_tuple(builder, ary.shape, 3)
            out = cgutils.alloca_once(builder, _F64, size=9)
            fn = _box_backward_function(builder.module, ncols, chunked, colours_only)
            builder.call(fn, [ary.data, stride, builder.mul(rows, stride)] + list(args[1:]) + [out])
            vals = [builder.load(builder.gep(out, [ir.Constant(_I64, k)])) for k in range(9)]
            return context.make_tuple(builder, signature.return_type, vals)

        return sig, codegen

    width = "of any width (16 columns at a time)" if chunked else f"at most {ncols} columns wide"
    box_backward_rgb.__doc__ = f"""The sums of :data:`BOX_BACKWARD_SUMS` (a tuple of nine float64) over
    one RGB Gaussian whose box is {width}: rows ``i0..i1``, columns ``j0..j0 + nj - 1``
    of the gradient planes ``planes [3, h, w + 16]`` (float32, C order; the region's origin is
    ``(x0, y0)``), ``e`` a pixel's gradient, ``w`` its weight exactly as the tiled forward
    computes it (:func:`_weights_ir`, :data:`HORNER`: ``q`` in float64 from ``mx, my, a, 2b,
    c``), ``dx``, ``dy`` its offsets from the centre, ``k0..k2`` the colours.

    Why: per row, the span loop of :func:`.kernels.backward` ran 16 lanes for a handful of
    pixels and reduced six sums across the lanes; here ({'two rows' if ncols == 8 else 'one row'}
    per 16-lane vector) the sums stay in vector registers across the rows and are reduced once
    per Gaussian."""
    if colours_only:
        box_backward_rgb.__doc__ += """

    Colours only: the first three sums, by the same operations; the six moments are 0."""
    return box_backward_rgb


#: What :func:`box8_backward_rgb`, :func:`box16_backward_rgb` and :func:`wide_backward_rgb` return, in
#: this order: the
#: colour gradients sum(e_k w), then the moments of s = w <e, colours>: sum s, s dx, s dx^2, s dy,
#: s dx dy, s dy^2.
BOX_BACKWARD_SUMS = ("e0w", "e1w", "e2w", "s", "sdx", "sdx2", "sdy", "sdxdy", "sdy2")
box8_backward_rgb = _make_box_backward(8)
box16_backward_rgb = _make_box_backward(16)
wide_backward_rgb = _make_box_backward(16, chunked=True)
#: The same three colour sums (``A^T e`` of the colour least squares, :mod:`ligcodec.fit.lsq`) without
#: the six moments, which that solve discards; the other six of the tuple are 0.
box8_colour_sums = _make_box_backward(8, colours_only=True)
box16_colour_sums = _make_box_backward(16, colours_only=True)
wide_colour_sums = _make_box_backward(16, chunked=True, colours_only=True)
