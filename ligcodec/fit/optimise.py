"""Fitting one level of one tile: initialisation, closed-form colours, Adam on everything, with
error-guided densification and relocation.

The inner loop needs no torch on the CPU: the numba kernels give the image gradient's pull-back
to the projected Gaussians (:func:`~ligcodec.render.kernels.backward`) and the hand-written chain
rule through the projection (:func:`~ligcodec.render.kernels.project_backward`, tested against
autograd), and Adam runs on numpy arrays. ``backend="torch"`` computes the same gradients with the
device-agnostic torch renderer instead (CUDA when a GPU is present).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numba
import numpy as np

from ..render import Gaussians
from ..render import kernels
from ..render.contract import CUTOFF_Q, aa_variance
from ..render.raster import backward_planes, rasterize
from ..runner import rebalance_threads
from .init import box_blur, downsample, init_gaussians
from .lsq import solve_colours


@dataclass
class FitSettings:
    steps: int = 1000
    lr_means: float = 0.4  # px per step, in full-res pixels
    lr_chol: float = 0.2
    lr_colours: float = 0.01
    lr_final: float = 0.1  # cosine decay to this fraction of each lr
    init_uniform: float = 0.3
    init_size: float = 0.7
    init_apron: int = 0  # px (at the fitting scale) around the tile where Gaussians may start
    lsq_iters: int = 25
    final_lsq: bool = True
    # Error-guided densification (Image-GS): start with this fraction of the budget and add the
    # rest in `densify_rounds` rounds spread over the first `densify_until` of the steps, at
    # pixels drawn with probability ~ the blurred squared error.
    densify_start: float = 0.5
    densify_rounds: int = 12
    densify_until: float = 0.4
    keep_inside: bool = True  # clamp means to the tile (and its apron) after every step
    # ... and this many px (at the fitting scale) in from its edge: 0.5 keeps them on the hull of
    # the pixel centres, where a pixel sees a Gaussian however narrow it gets (on the edge, a
    # needle-thin one falls between the centres: no gradient, drawn nowhere, still coded)
    inside_margin: float = 0.0
    # Relocation: at each of `densify_rounds` rounds over the first `densify_until` of the steps,
    # this fraction of the Gaussians whose removal would cost least moves to where the error is.
    relocate: float = 0.25
    # Over-provisioning: fit (1 + overfit) n Gaussians, and at `prune_at` of the steps remove the
    # overfit n whose removal would cost least (relocation's measure); the rest settle after.
    overfit: float = 0.3
    prune_at: float = 0.5
    # Coarse to fine: the first `coarse_until` of the steps fit the target area-averaged over
    # `coarse_factor` x `coarse_factor` blocks, rendered at that fraction of the scale: a quarter
    # of the pixels per step while densification and relocation still move Gaussians about, and
    # a smoother error to place them by. Only in fits that densify. Off: it gained on Kodak, but
    # it costs a sparse tile (a smooth 512-px tile of the medium histology image, 1,379 Gaussians)
    # 2 dB that the fine steps never win back (BENCHMARKS.md, twenty-first session).
    coarse_until: float = 0.0
    coarse_factor: int = 2
    backend: str = "numba"  # or "torch" (device-agnostic; CUDA when available)
    log_every: int = 0


@dataclass
class FitLog:
    steps: list = field(default_factory=list)
    psnr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)


def psnr(a, b, peak=1.0):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)


@numba.njit(cache=True, parallel=True)
def _adam_update(p, g, m, v, b1, b2, step, c2, eps):
    """One Adam update of the rows of ``p`` in place (``step`` per column): the float64 operations
    of ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g g; p -= step m / (sqrt(v / c2) + eps)`` in
    numpy's order, so numpy's bits, in one parallel pass. numpy's eight passes and their
    temporaries were, after the residual, the largest serial cost of a tile fitted alone."""
    for i in numba.prange(p.shape[0]):
        for j in range(p.shape[1]):
            mi = m[i, j] * b1 + (1 - b1) * g[i, j]
            vi = v[i, j] * b2 + (1 - b2) * g[i, j] * g[i, j]
            m[i, j] = mi
            v[i, j] = vi
            p[i, j] -= step[j] * mi / (np.sqrt(vi / c2) + eps)


class Adam:
    """Adam over a list of numpy arrays whose rows can grow (densification adds zero moments)."""

    def __init__(self, params, lrs, b1=0.9, b2=0.999, eps=1e-8):
        self.params, self.lrs = params, list(lrs)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.b1, self.b2, self.eps, self.t = b1, b2, eps, 0

    def step(self, grads, scale=1.0):
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        for p, g, m, v, lr in zip(self.params, grads, self.m, self.v, self.lrs):
            step = np.broadcast_to(np.asarray(lr * scale / c1, np.float64), p.shape[1:]).copy()  # per column
            _adam_update(p, np.asarray(g, np.float64), m, v, self.b1, self.b2, step, c2, self.eps)

    def keep(self, mask):
        self.params = [p[mask] for p in self.params]
        self.m = [m[mask] for m in self.m]
        self.v = [v[mask] for v in self.v]

    def grow(self, extra):
        self.params = [np.concatenate([p, e]) for p, e in zip(self.params, extra)]
        self.m = [np.concatenate([m, np.zeros_like(e)]) for m, e in zip(self.m, extra)]
        self.v = [np.concatenate([v, np.zeros_like(e)]) for v, e in zip(self.v, extra)]


def loss_grads(means, chol, cols, target, scale):
    """Mean squared error of the render of ``(means, chol, cols)`` at ``scale`` against ``target``,
    the render, and the error's gradients with respect to each of the three (numba kernels)."""
    rebalance_threads()
    h, w, _ = target.shape
    k = aa_variance(scale)
    params, cols_s = kernels.project(means, chol, cols, scale, k, CUTOFF_Q)
    out = rasterize(params, cols_s, (0, 0, w, h))
    planes = np.empty((out.shape[2], h, w + kernels.LANES), np.float32)  # filled, slack too
    loss = kernels.residual_planes(out, target, np.float32(2.0 / out.size), planes) / out.size
    g_ms, g_conic, g_cs = backward_planes(params, cols_s, (0, 0, w, h), planes)
    g = kernels.project_backward(chol, cols.astype(np.float64), scale, k, g_ms, g_conic, g_cs)
    return loss, out, g


def loss_grads_torch(means, chol, cols, target, scale):
    import torch

    from ..render.torch_ops import render_torch

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ts = [torch.tensor(a, dtype=torch.float32, device=dev, requires_grad=True) for a in (means, chol, cols)]
    h, w, _ = target.shape
    size = (max(1, math.ceil(w / scale - 1e-9)), max(1, math.ceil(h / scale - 1e-9)))
    out = render_torch(*ts, size, scale=scale, region=(0, 0, w, h), backend="torch")
    loss = ((out - torch.as_tensor(target, device=dev)) ** 2).mean()
    loss.backward()
    return float(loss.detach()), out.detach().cpu().numpy(), tuple(t.grad.cpu().numpy().astype(np.float64) for t in ts)


def lsq_colours(g: Gaussians, target, scale, iters):
    """``g`` with the colours that best fit ``target`` at ``scale`` (least squares, ``iters``
    conjugate-gradient iterations warm-started from its colours); the geometry is kept."""
    k = aa_variance(scale)
    # Project with a column of ones appended: the projection scales colours by the anti-aliasing
    # energy factor, so that column returns the factor itself. Solve for the projected colours,
    # then divide the factor back out.
    ones = np.ones((len(g), 1), g.colours.dtype)
    params, cols_s = kernels.project(g.means, g.chol, np.hstack([g.colours, ones]), scale, k, CUTOFF_Q)
    amp = cols_s[:, -1] if k else np.ones(len(g))
    h, w, _ = target.shape
    cols = solve_colours(params, (0, 0, w, h), target, np.ascontiguousarray(cols_s[:, :-1]), iters=iters)
    return Gaussians(g.means, g.chol, (cols / amp[:, None]).astype(np.float32))


def fit_level(target, n, *, scale=1.0, settings=None, seed=0, init: Gaussians | None = None, log=None):
    """Fit ``n`` Gaussians (full-res tile-local pixels) whose render at ``scale`` approximates
    ``target [h, w, C]`` (float32), least squares. Returns :class:`Gaussians`."""
    st = settings or FitSettings()
    rng = np.random.default_rng(seed)
    target = np.ascontiguousarray(target, dtype=np.float32)
    h, w, _ = target.shape
    grads = {"numba": loss_grads, "torch": loss_grads_torch}[st.backend]
    t0 = time.perf_counter()
    # Rounds of densification and relocation only where there are steps enough (4 a round) for
    # the new and moved Gaussians to settle; otherwise start full and move none.
    densify = init is None and st.densify_rounds > 0 and st.steps >= 4 * st.densify_rounds
    n_final = n
    if init is None and st.overfit > 0 and st.steps > 0:
        n = int(round(n * (1 + st.overfit)))
    n0 = max(1, int(round(n * st.densify_start))) if densify else n
    # The coarse phase belongs with densification: a short fit that starts full has no placing to
    # do, and its few steps are better spent at full resolution.
    coarse_end = int(st.coarse_until * st.steps) if densify and st.coarse_factor > 1 else 0
    fine = (target, scale)
    tgt, sc = (downsample(target, st.coarse_factor), scale / st.coarse_factor) if coarse_end > 0 else fine
    g = init if init is not None else init_gaussians(
        tgt, n0, rng, uniform=st.init_uniform, size_factor=st.init_size, scale=sc, apron=st.init_apron
    )
    rounds = _round_steps(st)
    add_at = _additions(rounds, n - len(g)) if densify else {}
    if st.lsq_iters:
        g = lsq_colours(g, tgt, sc, st.lsq_iters)
    opt = Adam([g.means.copy(), g.chol.astype(np.float64), g.colours.astype(np.float64)],
               [st.lr_means, st.lr_chol, st.lr_colours])
    move_at = set(rounds) if densify and st.relocate > 0 else set()
    prune_step = _prune_step(st, rounds) if n > n_final else st.steps
    out = gr = None
    edge = st.init_apron - st.inside_margin
    lo, hi_x, hi_y = edge / scale, (w + edge) / scale, (h + edge) / scale
    for step in range(st.steps):
        if step == prune_step:
            _drop_cheapest(opt, gr, sc, tgt.size, len(opt.params[0]) - n_final)
        if step in move_at and gr is not None:
            _relocate(opt, gr, out, tgt, sc, int(st.relocate * len(opt.params[0])), rng, n)
        if add_at.get(step, 0) > 0:
            opt.grow(_new_gaussians(out, tgt, add_at[step], sc, rng, n))
        frac = step / max(1, st.steps)
        decay = st.lr_final + (1 - st.lr_final) * 0.5 * (1 + math.cos(math.pi * frac))
        if step == coarse_end:  # after the round's moves, which read the last step's render
            tgt, sc = fine
        means, chol, cols = opt.params
        loss, out, gr = grads(means, chol, cols, tgt, sc)
        opt.step(gr, decay)
        _keep_in_range(means, chol, (-lo, hi_x, hi_y) if st.keep_inside else None)
        if log is not None and st.log_every and (step + 1) % st.log_every == 0:
            log.steps.append(step + 1)
            log.psnr.append(10 * math.log10(1.0 / max(loss, 1e-20)))
            log.seconds.append(time.perf_counter() - t0)
    if gr is not None:  # too few steps to reach prune_step: prune on the last step's gradient
        _drop_cheapest(opt, gr, sc, tgt.size, len(opt.params[0]) - n_final)
    means, chol, cols = opt.params
    g = Gaussians(means, chol, cols.astype(np.float32))
    if st.final_lsq and st.lsq_iters:
        g = lsq_colours(g, target, scale, st.lsq_iters)
    return g


def _keep_in_range(means, chol, box):
    """Clamp in place: the covariances' log scales to the renderer's accepted range (which also
    keeps sub-pixel Gaussians from collapsing to needles that no pixel centre sees), and with a
    ``box = (lo, hi_x, hi_y)`` the means to the tile, since a large step can carry a Gaussian off
    it, where no pixel sees it: its gradient is then zero and it is lost for good (and still coded)."""
    np.clip(chol[:, 0], -3.0, 8.0, out=chol[:, 0])
    np.clip(chol[:, 2], -3.0, 8.0, out=chol[:, 2])
    if box is not None:
        lo, hi_x, hi_y = box
        np.clip(means[:, 0], lo, hi_x, out=means[:, 0])
        np.clip(means[:, 1], lo, hi_y, out=means[:, 1])


def _round_steps(st: FitSettings) -> list[int]:
    """The steps at which densification and relocation rounds run: ``densify_rounds`` of them,
    evenly over the first ``densify_until`` of the steps."""
    at = np.linspace(0, st.densify_until * st.steps, st.densify_rounds + 1)[1:].astype(int)
    return np.maximum(1, at).tolist()


def _prune_step(st: FitSettings, rounds: list[int]) -> int:
    """The step at which an over-provisioned fit prunes back to its budget: ``prune_at`` of the
    steps, but after every round's moves and additions, so that the count ends at the budget (a
    fit too short to reach it prunes after its last step)."""
    return max([int(st.prune_at * st.steps), 1] + [r + 1 for r in rounds])


def _additions(rounds: list[int], extra: int) -> dict[int, int]:
    """How many Gaussians each densification round adds: ``extra`` spread evenly over ``rounds``."""
    r = len(rounds)
    return {at: extra * (i + 1) // r - extra * i // r for i, at in enumerate(rounds)} if extra > 0 else {}


def _relocate(opt: Adam, grads, out, target, scale, k, rng, n_final):
    """Move the ``k`` Gaussians whose removal would cost least to where the error of the render
    ``out`` is largest (MCMC-style relocation, as in 3DGS-MCMC and Image-GS's re-placement; the
    count stays the same). The new ones start from the residual of ``out``, as densification's do."""
    if k <= 0:
        return
    h, w, nch = target.shape
    _drop_cheapest(opt, grads, scale, h * w * nch, k)
    opt.grow(_new_gaussians(out, target, k, scale, rng, n_final))


def _drop_cheapest(opt: Adam, grads, scale, npix, k):
    """Remove the ``k`` Gaussians whose removal would raise the loss least (:func:`_removal_cost`)."""
    if k <= 0:
        return
    worst = np.argsort(_removal_cost(opt.params, grads, scale, npix), kind="stable")[:k]
    mask = np.ones(len(opt.params[0]), bool)
    mask[worst] = False
    opt.keep(mask)


def _removal_cost(params, grads, scale, npix):
    """Per Gaussian, the loss increase (mean squared error) its removal would cause, to second
    order: ``-c . dL/dc + |c|^2 sum_p g_p^2 / npix``, where the sum of the squared weights over the
    pixels is ``pi sqrt(det(s^2 Sigma))`` for a Gaussian that lies inside the target."""
    _, chol, cols = params
    g_cols = grads[2]
    area = math.pi * np.exp(chol[:, 0] + chol[:, 2]) * scale * scale
    return -(cols * g_cols).sum(1) + (cols * cols).sum(1) * area / npix


def _new_gaussians(out, target, k, scale, rng, n_final):
    """``k`` new Gaussians where the blurred squared error of ``out`` is largest (arrays to append)."""
    # Box sums by cumulative sums leave rounding residue (-1e-17) where the error is zero.
    err = np.maximum(box_blur(((out - target) ** 2).sum(-1).astype(np.float64), 2).ravel(), 0.0)
    h, w = target.shape[:2]
    prob = err / err.sum() if err.sum() > 0 else np.full(h * w, 1.0 / (h * w))
    idx = rng.choice(h * w, size=k, p=prob)
    ys, xs = np.divmod(idx, w)
    pos = np.stack([xs, ys], 1) + rng.uniform(0, 1, (k, 2))
    # As small as the final density implies where they go (half error-driven, half uniform).
    sigma = np.clip(0.7 / np.sqrt(n_final * prob[idx] * 0.5 + n_final / (h * w) * 0.5), 0.3, max(h, w))
    log_s = np.log(sigma / scale)
    chol = np.stack([log_s, np.zeros(k), log_s], 1)
    resid = (target - out)[ys, xs].astype(np.float64)
    return [pos / scale, chol, resid]
