"""The command line, driven through main(argv) as a user would type it."""

import numpy as np
from PIL import Image

from ligcodec.cli import main
from tests.test_fit import smooth_image


def _png(path, h=40, w=50):
    Image.fromarray((smooth_image(h, w) * 255).astype(np.uint8)).save(path)
    return path


def test_fit_render_info(tmp_path, capsys):
    src = _png(tmp_path / "in.png")
    model = tmp_path / "m.npz"
    assert main(["fit", str(src), str(model), "-n", "80", "--steps", "20", "-q"]) == 0
    assert main(["info", str(model)]) == 0
    assert "50x40" in capsys.readouterr().out
    assert main(["render", str(model), "--scale", "0.5"]) == 0
    out = tmp_path / "m.png"
    assert out.exists() and Image.open(out).size == (25, 20)
    # An existing output is never overwritten without --force.
    assert main(["render", str(model), "--scale", "0.5"]) != 0
    assert main(["render", str(model), "--scale", "0.5", "--force"]) == 0
    assert main(["render", str(model), "--region", "5,5,10,8", "-o", str(tmp_path / "r.png")]) == 0
    assert Image.open(tmp_path / "r.png").size == (10, 8)


def test_errors_are_one_line_messages(tmp_path, capsys):
    src = _png(tmp_path / "in.png")
    assert main(["fit", str(tmp_path / "missing.png"), str(tmp_path / "m.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    model = tmp_path / "m.npz"
    main(["fit", str(src), str(model), "-n", "30", "--steps", "5", "-q"])
    assert main(["render", str(model), "--region", "0,0,999,5", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "region" in err and "Traceback" not in err
    assert main(["render", str(model), "--region", "a,b", "-o", str(tmp_path / "x.png")]) != 0
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    assert main(["info", str(tmp_path / "junk.npz")]) == 2
    assert main(["fit", str(src), str(src), "--force"]) != 0  # never overwrite the input


def test_encode_decode_info(tmp_path, capsys):
    src = _png(tmp_path / "in.png", 40, 70)
    lig = tmp_path / "in.lig"
    assert main(["encode", str(src), str(lig), "-n", "120", "--steps", "20", "--workers", "1", "-q"]) == 0
    assert main(["encode", str(src), str(lig), "-n", "120"]) != 0  # exists: needs --force
    assert main(["encode", str(src), str(tmp_path / "b.lig"), "-n", "5", "--bpp", "1"]) != 0  # one budget only
    assert main(["info", str(lig), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "70x40" in out and "bits per Gaussian" in out
    # The default output (in.png, next to in.lig) is the source image here: never overwritten.
    assert main(["decode", str(lig), "--scale", "0.5"]) != 0
    assert Image.open(tmp_path / "in.png").size == (70, 40)
    other = tmp_path / "other.lig"
    other.write_bytes(lig.read_bytes())
    assert main(["decode", str(other), "--scale", "0.5"]) == 0
    assert Image.open(tmp_path / "other.png").size == (35, 20)
    assert main(["decode", str(lig), "--scale", "0.5", "-o", str(tmp_path / "half.png")]) == 0
    assert Image.open(tmp_path / "half.png").size == (35, 20)
    assert main(["decode", str(lig), "--preview", "--region", "0,0,10,10", "-o", str(tmp_path / "p.png")]) == 0
    (tmp_path / "bad.lig").write_bytes(b"\x89LIG\r\n\x1a\n" + b"\x00" * 40)
    assert main(["decode", str(tmp_path / "bad.lig"), "-o", str(tmp_path / "x.png")]) == 2
    assert "Traceback" not in capsys.readouterr().err
