"""Gradients of the numba backward kernel and of the device-agnostic torch renderer, checked
against torch autograd of the dense reference; the torch renderer's forward against the reference."""

import numpy as np
import pytest
import torch

from ligcodec.render import render, render_torch
from ligcodec.render.reference import render_reference_torch
from tests.conftest import random_gaussians


def _tensors(g, dtype=torch.float64):
    return [torch.tensor(np.asarray(a, np.float64), dtype=dtype, requires_grad=True) for a in (g.means, g.chol, g.colours)]


def _grads(fn, g, weights, dtype=torch.float64):
    params = _tensors(g, dtype)
    out = fn(*params)
    (out * weights.to(out.dtype)).sum().backward()
    return out.detach().double(), [p.grad.double() for p in params]


CASES = [
    (40, 30, 40, 3, 1.0, None),
    (64, 48, 80, 1, 0.5, None),
    (50, 50, 60, 4, 1.0, (10, 5, 23, 31)),
    (60, 40, 50, 2, 0.3, None),
    (33, 47, 70, 5, 1.6, (7, 9, 30, 40)),
    # RGB boxes under 8 columns take the backward's box path: all of them at 1/4, clipped by
    # the region's edges (odd rows, partial columns) in both cases
    (96, 80, 150, 3, 0.25, (3, 2, 17, 15)),
    (48, 40, 100, 3, 1.0, (7, 5, 30, 22)),
]


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("width,height,n,channels,scale,region", CASES)
def test_gradients_match_autograd_of_reference(rng, backend, width, height, n, channels, scale, region):
    g = random_gaussians(rng, n, width, height, channels, sigma=(0.7, 5))
    size = (width, height)
    ref_out = render_reference_torch(*_tensors(g), size, scale, region)
    weights = torch.tensor(rng.normal(size=tuple(ref_out.shape)))
    ref, ref_grads = _grads(lambda m, c, k: render_reference_torch(m, c, k, size, scale, region), g, weights)
    out, grads = _grads(
        lambda m, c, k: render_torch(m, c, k, size, scale=scale, region=region, backend=backend),
        g,
        weights,
        dtype=torch.float64 if backend == "torch" else torch.float32,
    )
    # Forward: float32 accumulation and the polynomial exp (numba) stay below 1e-5 of the peak.
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    # Gradients: the numba kernel sums per-row moments in float32 (dx up to ~15 px, squared), so
    # ~1e-4 of the largest gradient is its honest precision; the float64 torch path is exact.
    tol = 2e-4 if backend == "numba" else 1e-9
    for name, a, b in zip(("means", "chol", "colours"), grads, ref_grads):
        err = (a - b).abs().max() / b.abs().max()
        assert err < tol, f"{name}: {err:.2e}"


def test_numba_gradient_matches_finite_differences(rng):
    """Independent of autograd: central differences of the float64 reference.

    The hard 3-sigma cut-off makes the render piecewise smooth; with eps = 1e-6 a pixel crosses
    the boundary only if its q lies within ~1e-5 of the cut-off, which these inputs avoid.
    """
    from ligcodec.render import Gaussians, render_reference

    g = random_gaussians(rng, 6, 24, 20, 2, sigma=(1.5, 3), margin=-4)
    weights = rng.normal(size=(20, 24, 2))

    def loss(means, chol, colours):
        return float((render_reference(Gaussians(means, chol, colours), (24, 20)) * weights).sum())

    params = _tensors(g, torch.float32)
    (render_torch(*params, (24, 20)) * torch.tensor(weights, dtype=torch.float32)).sum().backward()
    base = [np.asarray(a, np.float64) for a in (g.means, g.chol, g.colours)]
    for k, p in enumerate(params):
        for idx in [(0, 0), (3, 1), (5, p.shape[1] - 1)]:
            eps = 1e-6
            plus = [b.copy() for b in base]
            minus = [b.copy() for b in base]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            fd = (loss(*plus) - loss(*minus)) / (2 * eps)
            # float32 moments in the kernel: ~1e-4 relative, plus a small absolute floor.
            assert abs(p.grad[idx].item() - fd) <= 1e-3 * abs(fd) + 1e-3, (k, idx, p.grad[idx].item(), fd)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@CUDA
@pytest.mark.parametrize("width,height,n,channels,scale,region", CASES)
def test_torch_renderer_on_cuda_matches_reference(rng, width, height, n, channels, scale, region):
    """The same device-agnostic torch code on a GPU: forward and gradients against the float64
    CPU reference. Runs only where CUDA exists (not in CI); float32 on the GPU, so the tolerances
    are float32's: ~1e-5 of the peak for the forward, ~1e-4 of the largest gradient."""
    g = random_gaussians(rng, n, width, height, channels, sigma=(0.7, 5))
    size = (width, height)
    ref_out = render_reference_torch(*_tensors(g), size, scale, region)
    weights = torch.tensor(rng.normal(size=tuple(ref_out.shape)))
    ref, ref_grads = _grads(lambda m, c, k: render_reference_torch(m, c, k, size, scale, region), g, weights)
    params = [p.detach().float().cuda().requires_grad_(True) for p in _tensors(g)]
    out = render_torch(*params, size, scale=scale, region=region, backend="auto")
    assert out.device.type == "cuda"
    (out * weights.to(out)).sum().backward()
    assert (out.detach().double().cpu() - ref).abs().max() <= 1e-5 * ref.abs().max()
    for name, p, b in zip(("means", "chol", "colours"), params, ref_grads):
        err = (p.grad.double().cpu() - b).abs().max() / b.abs().max()
        assert err < 1e-4, f"{name}: {err:.2e}"


def test_torch_renderer_bounded_chunks_match_unchunked(rng):
    from ligcodec.render.contract import project
    from ligcodec.render.torch_ops import rasterize_torch

    g = random_gaussians(rng, 300, 80, 60, 3)
    m, conic, cols = project(*[torch.tensor(np.asarray(a, np.float64)) for a in (g.means, g.chol, g.colours)], 1.0)
    big = rasterize_torch(m, conic, cols, (0, 0, 80, 60))
    small = rasterize_torch(m, conic, cols, (0, 0, 80, 60), max_elements=100)
    assert torch.allclose(big, small, atol=1e-12)
    np.testing.assert_allclose(big.numpy(), render(g, (80, 60)), atol=1e-5 * float(big.abs().max()))


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.23, 1.7])
def test_projection_backward_matches_autograd(rng, scale):
    """The hand-written chain rule through scale, anti-aliasing and log-Cholesky (torch-free fitting)."""
    from ligcodec.render.contract import aa_variance, project
    from ligcodec.render.kernels import project_backward

    g = random_gaussians(rng, 50, 40, 40, 3)
    m, c, k = _tensors(g)
    ms, conic, cs = project(m, c, k, scale)
    gm, gc, gk = (torch.tensor(rng.normal(size=tuple(t.shape))) for t in (ms, conic, cs))
    ((ms * gm).sum() + (conic * gc).sum() + (cs * gk).sum()).backward()
    ours = project_backward(g.chol.astype(np.float64), g.colours.astype(np.float64), scale, aa_variance(scale),
                            gm.numpy(), gc.numpy(), gk.numpy())
    for a, b in zip(ours, (m.grad, c.grad, k.grad)):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-9, atol=1e-9 * float(b.abs().max()))


def test_backward_does_not_depend_on_the_order_of_the_gaussians(rng):
    """SCENARIO: random Gaussians, the same sorted by kernels.tile_order (the order in which the
    backward kernel visits them) and sorted by finer tiles, through the backward. EXPECTED
    RESULT: the gradients of each are the others' permuted, bit for bit; tile_order sorts by the tile
    of the centre (clamped to the region), puts Gaussians that miss the region last, and is
    empty (index order) for Gaussians already in its order."""
    from ligcodec.render import kernels
    from ligcodec.render.raster import project, rasterize_backward

    g = random_gaussians(rng, 3000, 300, 200, 3, sigma=(0.5, 6))
    params, _ = project(g, 1.0)
    boxes = kernels.gaussian_boxes(params, 0, 0, 300, 200)
    order = kernels.tile_order(params, boxes, 0, 0, 300, 200, 64)
    assert sorted(order) == list(range(len(g)))
    drawn = (boxes[order, 0] <= boxes[order, 1]) & (boxes[order, 2] <= boxes[order, 3])
    assert 0 < drawn.sum() < len(g) and drawn[: drawn.sum()].all()  # those that miss come last
    # tiles of the centres, 5 x 4 of them, centres outside the region counted in the edge tiles
    key = np.clip(np.floor(params[order, 1] / 64), 0, 3) * 5 + np.clip(np.floor(params[order, 0] / 64), 0, 4)
    assert (np.diff(key[drawn]) >= 0).all()

    tiled = g.take(order)
    params_t, _ = project(tiled, 1.0)
    assert len(kernels.tile_order(params_t, kernels.gaussian_boxes(params_t, 0, 0, 300, 200), 0, 0, 300, 200,
                                  64)) == 0
    grad = rng.normal(size=(200, 300, 3)).astype(np.float32)
    # Three ways through rasterize_backward: already in order (no permutation), random (the
    # parameters gathered into order), and in 16-px tiles (runs of Gaussians, visited in order
    # through the index).
    in_order = rasterize_backward(*project(tiled, 1.0), (0, 0, 300, 200), grad)
    shuffled = rasterize_backward(*project(g, 1.0), (0, 0, 300, 200), grad)
    fine = np.floor(g.means / 16).astype(np.int64)
    by16 = np.lexsort((fine[:, 0], fine[:, 1]))
    params16, _ = project(g.take(by16), 1.0)
    boxes16 = kernels.gaussian_boxes(params16, 0, 0, 300, 200)
    order16 = kernels.tile_order(params16, boxes16, 0, 0, 300, 200, 64)
    assert 0 < kernels.order_breaks(order16) < len(g) // 16 <= kernels.order_breaks(order)
    in_runs = rasterize_backward(*project(g.take(by16), 1.0), (0, 0, 300, 200), grad)
    for a, b, c in zip(shuffled, in_order, in_runs):
        assert np.array_equal(a[order], b)
        assert np.array_equal(a[by16], c)


def test_backward_does_not_depend_on_how_its_work_is_cut(rng):
    """SCENARIO: random Gaussians of very different sizes through the backward kernel, their
    visiting order cut into 1, 3, 8 and 64 runs of equal work (kernels.work_chunks), in index order
    and in tile order. EXPECTED RESULT: the same gradients bit for bit every time; the runs are
    ascending bounds from 0 to N, and their work (box pixels plus the fixed cost) is even to within
    one Gaussian's."""
    from ligcodec.render import kernels
    from ligcodec.render.contract import CUTOFF_Q
    from ligcodec.render.raster import project

    g = random_gaussians(rng, 2000, 300, 200, 3, sigma=(0.4, 20))
    params, cols = project(g, 1.0)
    boxes = kernels.gaussian_boxes(params, 0, 0, 300, 200)
    planes = np.zeros((3, 200, 300 + kernels.LANES), np.float32)
    planes[:, :, :300] = rng.normal(size=(3, 200, 300))
    order = kernels.tile_order(params, boxes, 0, 0, 300, 200, 64)
    assert len(order) == len(g)
    work = ((np.maximum(boxes[:, 1] - boxes[:, 0] + 1, 0) * np.maximum(boxes[:, 3] - boxes[:, 2] + 1, 0))
            + kernels.WORK_PER_GAUSSIAN)
    for visit in (order[:0], order):
        ref = kernels.backward(params, cols, CUTOFF_Q, boxes, 0, 0, planes, visit, 1)
        for nchunks in (3, 8, 64):
            bounds = kernels.work_chunks(boxes, visit, nchunks)
            assert bounds[0] == 0 and bounds[-1] == len(g) and (np.diff(bounds) >= 0).all()
            w = work[visit] if len(visit) else work
            per_run = [w[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])]
            assert max(per_run) - min(per_run) <= 2 * w.max()
            got = kernels.backward(params, cols, CUTOFF_Q, boxes, 0, 0, planes, visit, nchunks)
            for a, b in zip(ref, got):
                assert np.array_equal(a, b)


@pytest.mark.parametrize("nch", [3, 2])
def test_colour_only_backward_gives_the_same_colour_gradients(rng, nch):
    """SCENARIO: random Gaussians of very different sizes (boxes for all three box paths and
    needles for the exact-span path), RGB and 2 channels, through rasterize_backward with and
    without ``colours_only`` (the colour least squares' A^T r), in index order and shuffled.
    EXPECTED RESULT: the colour gradients are the same bit for bit (the colour fit's results may
    not move), and the geometry gradients, which are not wanted, are 0 wherever a box path ran."""
    from ligcodec.render.raster import project, rasterize_backward

    g = random_gaussians(rng, 2000, 300, 200, nch, sigma=(0.4, 20))
    grad = rng.normal(size=(200, 300, nch)).astype(np.float32)
    for gg in (g, g.take(rng.permutation(len(g)))):
        params, cols = project(gg, 1.0)
        full = rasterize_backward(params, cols, (0, 0, 300, 200), grad)
        fast = rasterize_backward(params, cols, (0, 0, 300, 200), grad, colours_only=True)
        assert np.abs(full[2]).max() > 0
        assert np.array_equal(full[2], fast[2])
        if nch == 3:  # the box paths serve most Gaussians: their geometry sums were skipped
            skipped = (fast[0] == 0).all(1) & (full[0] != 0).any(1)
            assert skipped.mean() > 0.5


def test_residual_planes_match_numpy(rng):
    """SCENARIO: a render and a target (odd sizes, RGB and 2 channels) through
    kernels.residual_planes, the fit's fused residual, on 1 and 2 threads, into planes whose slack
    holds garbage. EXPECTED RESULT: the planes equal numpy's ``(out - target) * gain`` moved planar,
    bit for bit, with zero slack; the sum of squares is the same on both thread counts and equals
    numpy's float64 sum of the float32 residual's squares to 1e-12 relative (only the order of
    the float64 additions differs)."""
    import numba

    from ligcodec.render import kernels

    for h, w, c in ((37, 53, 3), (8, 130, 2)):
        out, target = (rng.random((h, w, c), dtype=np.float32) for _ in range(2))
        gain = np.float32(2.0 / out.size)
        ref = np.zeros((c, h, w + kernels.LANES), np.float32)
        ref[:, :, :w] = np.moveaxis((out - target) * gain, -1, 0)
        sums = []
        for threads in (1, 2):
            prev = numba.get_num_threads()
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            try:
                planes = np.full_like(ref, np.nan)
                sums.append(kernels.residual_planes(out, target, gain, planes))
            finally:
                numba.set_num_threads(prev)
            assert np.array_equal(planes, ref)
        assert sums[0] == sums[1]
        exact = ((out - target).astype(np.float64) ** 2).sum()  # the float32 residual, squared in float64
        assert abs(sums[0] - exact) <= 1e-12 * exact
