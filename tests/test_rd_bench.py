"""bench/rd.py --merge: the tables of runs saved with --json, taken together (no Kodak data needed:
made-up rows). Long rate-distortion runs go in halves side by side; their merge must count each
image once and give the BD-rate of the whole set."""

import numpy as np
import pytest

from bench import rd
from bench.metrics import bd_rate


def _rows(images, gap_db):
    """Rows of ``images`` at 0.25 / 0.5 / 1 bpp: JPEG 2000 at the target size with PSNR 30 + 4 log2(4t),
    ligcodec at the same size ``gap_db`` below it."""
    rows = {}
    for t in (0.25, 0.5, 1.0):
        p = 30 + 4 * np.log2(4 * t)
        for codec, q in (("ligcodec", p - gap_db), ("JPEG2000", p)):
            rows[(t, codec)] = [dict(image=im, bpp=t, psnr=q, msssim=0.9, enc=1.0, dec=0.01, seam=np.nan)
                                for im in images]
    return rows


def test_merge_counts_each_half_once_and_gives_the_whole_sets_bd_rate(tmp_path, capsys):
    """SCENARIO: two halves saved as --json, one image each, 1 dB and 0 dB below JPEG 2000.
    EXPECTED RESULT: the merged table has 2 images a target, the mean PSNR of both, and the BD-rate of
    the mean curves (0.5 dB below a curve of 4 dB an octave: 2^(0.5 / 4) - 1 = +9.05 %)."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    rd.save_rows(_rows(["kodim01"], 1.0), a)
    rd.save_rows(_rows(["kodim02"], 0.0), b)
    assert rd.main(["--merge", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "| 0.5        | ligcodec | 2      | 0.500 | 33.50" in out
    want = bd_rate([0.25, 0.5, 1.0], [29.5, 33.5, 37.5], [0.25, 0.5, 1.0], [30.0, 34.0, 38.0])
    assert abs(want - 100 * (2 ** (0.5 / 4) - 1)) < 0.1
    assert f"| JPEG2000 | {want:+.1f} %" in out


def test_merge_refuses_an_image_measured_twice(tmp_path):
    """SCENARIO: the same image in both files (a half run twice). EXPECTED RESULT: a one-line exit
    that names the target, not a mean that counts the image twice."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    rd.save_rows(_rows(["kodim01"], 1.0), a)
    rd.save_rows(_rows(["kodim01", "kodim03"], 0.0), b)
    with pytest.raises(SystemExit, match="appears twice at 0.25 bpp"):
        rd.main(["--merge", str(a), str(b)])


def test_rows_rebuilt_from_a_log_leave_missing_columns_empty():
    """SCENARIO: rows with bpp and PSNR only (rebuilt from a printed log). EXPECTED RESULT: their
    means are nan where a value is missing, and the seam column says there are no borders."""
    rs = [dict(image="kodim01", bpp=0.5, psnr=30.0)]
    assert np.isnan(rd._mean(rs, "msssim")) and rd._mean(rs, "psnr") == 30.0
    assert rd._seam_cell(rs) == "no borders"
