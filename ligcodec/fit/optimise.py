"""Fitting one level of one tile: initialisation, closed-form colours, Adam on everything."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..render import Gaussians
from ..render.contract import CUTOFF_Q, aa_variance
from ..render.kernels import project as project_np
from ..render.torch_ops import render_torch
from .init import init_gaussians
from .lsq import solve_colours


@dataclass
class FitSettings:
    steps: int = 600
    lr_means: float = 0.4  # px per step, in full-res pixels
    lr_chol: float = 0.05
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
    densify_rounds: int = 4
    densify_until: float = 0.6
    log_every: int = 0


@dataclass
class FitLog:
    steps: list = field(default_factory=list)
    psnr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)


def psnr(a, b, peak=1.0):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)


def _lsq(g: Gaussians, target, scale, iters):
    params, _ = project_np(g.means, g.chol, g.colours, scale, aa_variance(scale), CUTOFF_Q)
    h, w, _ = target.shape
    # The projection scales colours by the AA energy factor; solve for projected colours and undo it.
    amp = _amplitude(g, scale)
    cols = solve_colours(params, (0, 0, w, h), target, g.colours * amp[:, None], iters=iters)
    return Gaussians(g.means, g.chol, (cols / amp[:, None]).astype(np.float32))


def _amplitude(g: Gaussians, scale):
    k = aa_variance(scale)
    if k == 0:
        return np.ones(len(g))
    cov = g.covariance() * scale * scale
    det0 = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
    det = (cov[:, 0] + k) * (cov[:, 2] + k) - cov[:, 1] ** 2
    return np.sqrt(det0 / det)


def fit_level(target, n, *, scale=1.0, settings=None, seed=0, init: Gaussians | None = None, log=None):
    """Fit ``n`` Gaussians (full-res tile-local pixels) whose render at ``scale`` approximates
    ``target [h, w, C]`` (float32), least squares. Returns :class:`Gaussians`."""
    st = settings or FitSettings()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    h, w, nch = target.shape
    size = (max(1, math.ceil(w / scale - 1e-9)), max(1, math.ceil(h / scale - 1e-9)))
    t0 = time.perf_counter()
    # Densify only when there are steps enough to place the new Gaussians; otherwise start full.
    densify = init is None and st.densify_rounds > 0 and st.steps >= 4 * st.densify_rounds
    n0 = max(1, int(round(n * st.densify_start))) if densify else n
    g = init if init is not None else init_gaussians(
        target, n0, rng, uniform=st.init_uniform, size_factor=st.init_size, scale=scale, apron=st.init_apron
    )
    add_at = {}
    if len(g) < n and densify:
        rounds = np.maximum(1, np.linspace(0, st.densify_until * st.steps, st.densify_rounds + 1)[1:].astype(int))
        extra = n - len(g)
        for r, at in enumerate(rounds):
            add_at[int(at)] = extra * (r + 1) // st.densify_rounds - extra * r // st.densify_rounds
    if st.lsq_iters:
        g = _lsq(g, target, scale, st.lsq_iters)
    means = torch.tensor(g.means, dtype=torch.float32, requires_grad=True)
    chol = torch.tensor(g.chol, dtype=torch.float32, requires_grad=True)
    cols = torch.tensor(g.colours, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam(
        [
            {"params": [means], "lr": st.lr_means},
            {"params": [chol], "lr": st.lr_chol},
            {"params": [cols], "lr": st.lr_colours},
        ]
    )
    base = [grp["lr"] for grp in opt.param_groups]
    tgt = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
    region = (0, 0, w, h)
    for step in range(st.steps):
        frac = step / max(1, st.steps)
        decay = st.lr_final + (1 - st.lr_final) * 0.5 * (1 + math.cos(math.pi * frac))
        for grp, lr in zip(opt.param_groups, base):
            grp["lr"] = lr * decay
        if step in add_at and add_at[step] > 0:
            means, chol, cols = _densify(opt, out.detach(), tgt, means, chol, cols, add_at[step], scale, rng, n)
        opt.zero_grad(set_to_none=True)
        out = render_torch(means, chol, cols, size, scale=scale, region=region, backend="numba")
        loss = ((out - tgt) ** 2).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            # Keep covariances inside the renderer's accepted range and sub-pixel Gaussians from
            # collapsing to needles that no pixel centre sees.
            chol[:, 0].clamp_(-3.0, 8.0)
            chol[:, 2].clamp_(-3.0, 8.0)
        if log is not None and st.log_every and (step + 1) % st.log_every == 0:
            log.steps.append(step + 1)
            log.psnr.append(10 * math.log10(1.0 / max(loss.item(), 1e-20)))
            log.seconds.append(time.perf_counter() - t0)
    g = Gaussians(means.detach().numpy(), chol.detach().numpy(), cols.detach().numpy())
    if st.final_lsq and st.lsq_iters:
        g = _lsq(g, target, scale, st.lsq_iters)
    return g


def _densify(opt, out, tgt, means, chol, cols, k, scale, rng, n_final):
    """Add ``k`` Gaussians where the blurred squared error is largest; extend Adam's state."""
    from .init import box_blur

    err = ((out - tgt) ** 2).sum(-1).numpy().astype(np.float64)
    err = box_blur(err, 2).ravel()
    h, w = out.shape[:2]
    prob = err / err.sum() if err.sum() > 0 else np.full(h * w, 1.0 / (h * w))
    idx = rng.choice(h * w, size=k, p=prob)
    ys, xs = np.divmod(idx, w)
    pos = np.stack([xs, ys], 1) + rng.uniform(0, 1, (k, 2))
    # New Gaussians are as small as the final density implies in the places they go to.
    sigma = np.clip(0.7 / np.sqrt(n_final * prob[idx] * 0.5 + n_final / (h * w) * 0.5), 0.3, max(h, w))
    resid = (tgt - out).numpy()[ys, xs]
    new = [
        torch.tensor(pos / scale, dtype=torch.float32),
        torch.tensor(np.repeat(np.log(sigma / scale)[:, None], 3, 1) * [1, 0, 1], dtype=torch.float32),
        torch.tensor(resid, dtype=torch.float32),
    ]
    grown = []
    for grp, old, add in zip(opt.param_groups, (means, chol, cols), new):
        t = torch.cat([old.detach(), add]).requires_grad_(True)
        state = opt.state.pop(old, None)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = torch.cat([state[key], torch.zeros_like(add)])
            opt.state[t] = state
        grp["params"] = [t]
        grown.append(t)
    return grown
