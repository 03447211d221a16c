"""Content-adaptive initialisation: where to put the first Gaussians and how big to make them."""

from __future__ import annotations

import numpy as np

from ..render import Gaussians


def gradient_energy(img: np.ndarray) -> np.ndarray:
    """``[h, w]`` gradient magnitude summed over channels, lightly blurred (3x3 box)."""
    img = img.astype(np.float32)
    gx = np.zeros(img.shape[:2], np.float32)
    gy = np.zeros(img.shape[:2], np.float32)
    if img.shape[1] > 1:
        d = np.abs(np.diff(img, axis=1)).sum(-1)
        gx[:, 1:] += d
        gx[:, :-1] += d
    if img.shape[0] > 1:
        d = np.abs(np.diff(img, axis=0)).sum(-1)
        gy[1:] += d
        gy[:-1] += d
    return box_blur(gx + gy, 1)


def box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 box with edge padding, by cumulative sums."""
    p = np.pad(a, r, mode="edge").astype(np.float64)
    c = np.cumsum(np.cumsum(p, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)))
    k = 2 * r + 1
    h, w = a.shape
    return ((c[k : k + h, k : k + w] - c[:h, k : k + w] - c[k : k + h, :w] + c[:h, :w]) / (k * k)).astype(a.dtype)


def init_gaussians(target, n, rng, *, uniform=0.3, size_factor=0.7, scale=1.0, apron=0):
    """``n`` Gaussians for ``target [h, w, C]`` (pixels at ``scale``) with zero colours.

    Positions are drawn with probability ``uniform / area + (1 - uniform) * grad / sum(grad)``
    (Image-GS's 70/30 mixture), jittered inside their pixel. Each Gaussian is isotropic with
    sigma = size_factor / sqrt(local density), where the local density is n times the sampling
    probability: Gaussians are small where they are packed densely. Means and sigmas are returned
    in full-resolution pixels (divided by ``scale``).

    ``apron`` px around the target are sampled too (edge-replicated): a tile's pixels are drawn
    only by the tile's own Gaussians, so pixels at its border need Gaussians centred just outside
    as much as interior pixels need their neighbours.
    """
    h0, w0, nch = target.shape
    if apron:
        target = np.pad(target, ((apron, apron), (apron, apron), (0, 0)), mode="edge")
    h, w = target.shape[:2]
    g = gradient_energy(target).ravel().astype(np.float64)
    total = g.sum()
    prob = np.full(h * w, 1.0 / (h * w))
    if total > 0 and uniform < 1:
        prob = uniform * prob + (1 - uniform) * g / total
    idx = rng.choice(h * w, size=n, p=prob / prob.sum())
    ys, xs = np.divmod(idx, w)
    means = np.stack([xs, ys], 1) + rng.uniform(0, 1, (n, 2)) - apron
    density = n * prob[idx]  # Gaussians per pixel around each sample
    sigma = np.clip(size_factor / np.sqrt(density), 0.3, max(h, w))
    log_s = np.log(sigma / scale)
    chol = np.stack([log_s, np.zeros(n), log_s], 1)
    return Gaussians(means / scale, chol, np.zeros((n, nch), np.float32))


def downsample(img: np.ndarray, f: int = 2) -> np.ndarray:
    """Area average over f x f blocks (edge-replicated to a multiple of f): ``ceil(h/f) x ceil(w/f)``."""
    h, w = img.shape[:2]
    p = np.pad(img, ((0, -h % f), (0, -w % f), (0, 0)), mode="edge")
    return p.reshape(p.shape[0] // f, f, p.shape[1] // f, f, -1).mean(axis=(1, 3)).astype(np.float32)
