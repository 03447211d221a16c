"""No budget writes a file larger than the image's raw samples (width x height x channels x bytes
per sample): the encoder caps the Gaussian count, and encodes again if a file still comes out
larger."""

import numpy as np
import pytest
from PIL import Image

from ligcodec.cli import main
from ligcodec.codec import ratecontrol
from ligcodec.codec.ratecontrol import encode, raw_size
from tests.test_fit import smooth_image


def _grey(h=64, w=64, seed=0):
    """A smooth grey image with a little noise (raw: one byte a pixel, so the easiest to exceed)."""
    g = smooth_image(h, w, 1, seed)
    return np.clip(g + 0.05 * np.random.default_rng(seed).standard_normal(g.shape), 0, 1)


IMAGES = {
    "grey 8-bit": lambda: (_grey() * 255).astype(np.uint8),
    "grey 16-bit": lambda: (_grey() * 65535).astype(np.uint16),
    "RGB smooth": lambda: (smooth_image(64, 64) * 255).astype(np.uint8),
    "RGB flat": lambda: np.full((64, 64, 3), (200, 40, 90), np.uint8),
}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_top_quality_stays_under_raw(tmp_path, name):
    """SCENARIO: quality 100 (before the cap: 2.6x the raw bytes on the grey image) and 90 on
    small grey, 16-bit, smooth and flat images. EXPECTED RESULT: every file is smaller than the
    raw samples, and quality 100 still gives at least as many Gaussians as 90."""
    a = IMAGES[name]()
    raw = raw_size(64, 64, a.shape[2] if a.ndim == 3 else 1, 16 if a.dtype == np.uint16 else 8)
    assert raw == a.nbytes
    r90 = encode(a, tmp_path / "q90.lig", quality=90, effort=1, workers=1)
    r100 = encode(a, tmp_path / "q100.lig", quality=100, effort=1, workers=1)
    for r in (r90, r100):
        assert r.bytes == (tmp_path / r.path).stat().st_size <= raw, (name, r.bytes, raw)
    assert r100.gaussians >= r90.gaussians


def test_a_file_over_raw_is_encoded_again(tmp_path, monkeypatch):
    """SCENARIO: the budget estimate misses (simulated: the cap switched off) and quality 100 on a
    grey image comes out far larger than its raw bytes. EXPECTED RESULT: that file is never
    written; the encoder encodes again with fewer Gaussians (two or more passes, ``requested``
    says what was asked), the file kept is under the raw size, and no temporary or journal file
    is left."""
    monkeypatch.setattr(ratecontrol, "RAW_CAP", 1e9)
    a = (_grey() * 255).astype(np.uint8)
    out = tmp_path / "g.lig"
    seen = []
    real_replace = ratecontrol.os.replace
    monkeypatch.setattr(ratecontrol.os, "replace", lambda s, d: (seen.append(ratecontrol.os.path.getsize(s)),
                                                                 real_replace(s, d)))
    r = encode(a, out, quality=100, effort=1, workers=1)
    assert r.passes >= 2 and r.requested > r.gaussians
    assert r.bytes == out.stat().st_size <= a.nbytes
    assert seen == [r.bytes]  # only the final file was ever moved into place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.lig"]


def test_budgets_far_from_raw_do_not_consult_the_cap(tmp_path, monkeypatch):
    """SCENARIO: the default budget, whose file is a few percent of the raw size. EXPECTED RESULT:
    the cap's size model is not even run (such files are byte for byte what they were before
    the cap), and the budget is the one asked for."""
    def boom(*a, **k):
        raise AssertionError("the cap consulted the size model")

    monkeypatch.setattr(ratecontrol, "gaussians_for_bpp", boom)
    a = (smooth_image(64, 96) * 255).astype(np.uint8)
    r = encode(a, tmp_path / "d.lig", gaussians=200, effort=1, workers=1, steps=20)
    assert r.requested is None and r.passes == 1


def test_cli_caps_an_explicit_budget_with_a_warning(tmp_path, capsys):
    """SCENARIO: `encode --gaussians` / `--density` asking for more Gaussians than fit under the
    raw size (one per pixel) of a small grey image. EXPECTED RESULT: exit code 0, a file under
    the raw size, and one warning line saying what was capped, even with -q; quality 100 is
    capped silently (it means "the most that fits")."""
    src = tmp_path / "g.png"
    Image.fromarray((_grey() * 255).astype(np.uint8)[:, :, 0]).save(src)
    for args in (["--gaussians", "4096"], ["--density", "1"], ["--bpp", "8"]):
        out = tmp_path / "g.lig"
        assert main(["encode", str(src), str(out), *args, "--effort", "1", "--workers", "1", "-q", "--force"]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ligcodec: warning: " + args[0]), err
        assert "raw" in err[0] and "capped at" in err[0]
        assert out.stat().st_size <= 64 * 64
    assert main(["encode", str(src), str(tmp_path / "q.lig"), "-Q", "100", "--effort", "1", "--workers", "1",
                 "-q"]) == 0
    assert capsys.readouterr().err == "" and (tmp_path / "q.lig").stat().st_size <= 64 * 64


def test_tiny_image_gets_its_file_and_a_warning(tmp_path, capsys):
    """SCENARIO: an 8x8 RGB image (192 raw bytes), smaller than any file's header and index.
    EXPECTED RESULT: the encode ends (the budget shrinks to one Gaussian and stops there), exit
    code 0, the file decodes, and one warning line says why it is larger than the raw samples."""
    src = tmp_path / "t.png"
    Image.fromarray((np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "t.lig"
    assert main(["encode", str(src), str(out), "-Q", "100", "--effort", "1", "--workers", "1", "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "so small" in err[0] and "192 bytes" in err[0], err
    assert main(["decode", str(out), "-o", str(tmp_path / "d.png"), "-q"]) == 0
