"""Image quality metrics for the benchmarks: PSNR, MS-SSIM (Wang, Simoncelli, Bovik 2003), the
seam measure (the encoder's own, :func:`ligcodec.codec.seams.seam_ratio`) and BD-rate."""

from __future__ import annotations

import numpy as np

from ligcodec.codec.seams import seam_ratio  # noqa: F401 - #16's seam measure, as the encoder uses it

_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def psnr(a, b, peak=255.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def _gauss_filter(img, sigma=1.5, size=11):
    x = np.arange(size) - size // 2
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    # 'valid' separable filtering, as in the reference implementation
    out = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 0, img)
    return np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, out)


def _ssim_parts(x, y, peak):
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = _gauss_filter(x), _gauss_filter(y)
    sxx = _gauss_filter(x * x) - mx * mx
    syy = _gauss_filter(y * y) - my * my
    sxy = _gauss_filter(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def ms_ssim(a, b, peak=255.0) -> float:
    """MS-SSIM over 5 scales, per channel, averaged over channels (images >= 176 px a side)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    vals = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mcs = []
        for s in range(5):
            ssim, cs = _ssim_parts(x, y, peak)
            if s < 4:
                mcs.append(max(cs, 0.0))
                h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
                x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
                y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        vals.append(float(np.prod(np.array(mcs) ** _WEIGHTS[:4]) * max(ssim, 0.0) ** _WEIGHTS[4]))
    return float(np.mean(vals))


def bd_rate(rate_a, psnr_a, rate_b, psnr_b) -> float:
    """Bjøntegaard delta rate of A against B, in %: the mean difference of log-rate at equal
    PSNR over the PSNR range both curves cover, from cubic fits of log-rate against PSNR (as in
    VCEG-M33). Positive: A needs that many % more bytes than B for the same PSNR."""
    la, lb = np.log(np.asarray(rate_a, float)), np.log(np.asarray(rate_b, float))
    pa, pb = np.asarray(psnr_a, float), np.asarray(psnr_b, float)
    deg = min(3, len(pa) - 1, len(pb) - 1)
    fa, fb = np.polyfit(pa, la, deg), np.polyfit(pb, lb, deg)
    lo, hi = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    if not hi > lo:
        return float("nan")
    ia, ib = np.polyint(fa), np.polyint(fb)
    diff = ((np.polyval(ia, hi) - np.polyval(ia, lo)) - (np.polyval(ib, hi) - np.polyval(ib, lo))) / (hi - lo)
    return float((np.exp(diff) - 1) * 100)
