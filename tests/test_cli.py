"""The command line, driven through main(argv) as a user would type it."""

import numpy as np
import pytest
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
    # --png-level changes the zlib level only: the same pixels, and level 0 stores them uncompressed.
    assert main(["decode", str(lig), "--png-level", "0", "-o", str(tmp_path / "raw.png")]) == 0
    assert main(["decode", str(lig), "--png-level", "9", "-o", str(tmp_path / "nine.png")]) == 0
    raw, nine = Image.open(tmp_path / "raw.png"), Image.open(tmp_path / "nine.png")
    assert np.array_equal(np.asarray(raw), np.asarray(nine))
    assert (tmp_path / "raw.png").stat().st_size > 40 * 70 * 3 > (tmp_path / "nine.png").stat().st_size
    (tmp_path / "bad.lig").write_bytes(b"\x89LIG\r\n\x1a\n" + b"\x00" * 40)
    assert main(["decode", str(tmp_path / "bad.lig"), "-o", str(tmp_path / "x.png")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_decode_quarter_of_progressive_file_reads_only_level0(tmp_path, capsys, monkeypatch):
    """SCENARIO: `encode --progressive`, then `decode --scale 0.25` (no -o), counting the bytes
    every reader of the file reads. EXPECTED RESULT: `info` says the file is progressive; the 1/4
    decode writes in.png next to the file and reads no byte past the level-0 chunks; `--scale
    0.5` and `--all-levels` read beyond them; `--preview --all-levels` is a usage error."""
    from ligcodec import container

    src = _png(tmp_path / "src.png", 64, 96)
    lig = tmp_path / "in.lig"
    assert main(["encode", str(src), str(lig), "-n", "300", "--steps", "20", "--workers", "1", "-q",
                 "--progressive"]) == 0
    assert main(["info", str(lig)]) == 0
    assert "progressive: level 0 alone serves reads at scale <= 0.25" in capsys.readouterr().out
    read, close = [], container.LigReader.close
    monkeypatch.setattr(container.LigReader, "close", lambda self: (read.append(self.bytes_read), close(self)))
    with container.LigReader(lig) as r:
        level0_end = r.entry(1, 0).offset
    read.clear()
    assert main(["decode", str(lig), "--scale", "0.25"]) == 0
    assert Image.open(tmp_path / "in.png").size == (24, 16)
    assert read and 0 < max(read) <= level0_end
    for args in (["--scale", "0.5"], ["--scale", "0.25", "--all-levels"]):
        read.clear()
        assert main(["decode", str(lig), *args, "-o", str(tmp_path / "x.png"), "--force"]) == 0
        assert max(read) > level0_end, args
    assert main(["decode", str(lig), "--preview", "--all-levels", "-o", str(tmp_path / "y.png")]) == 2
    assert "not both" in capsys.readouterr().err


def test_outputs_a_user_can_get_wrong(tmp_path, capsys):
    """SCENARIO: the mistakes a user makes with output names: a missing directory, an image name
    for the .lig, a format that cannot hold the image, a PNG given to the decoder.
    EXPECTED RESULT: a one-line message saying what to do, exit code 2, before any fitting, and
    no file (or temporary file) left behind."""
    src = _png(tmp_path / "in.png", 40, 70)
    lig = tmp_path / "in.lig"
    enc = ["-n", "60", "--steps", "5", "--workers", "1", "-q"]
    assert main(["encode", str(src), str(tmp_path / "nodir" / "x.lig"), *enc]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["encode", str(src), str(tmp_path / "x.jpg"), *enc]) == 2
    assert "x.lig" in capsys.readouterr().err and not (tmp_path / "x.jpg").exists()
    assert main(["encode", str(src), str(lig), *enc]) == 0
    assert main(["decode", str(lig), "-o", str(tmp_path / "nodir" / "x.png")]) == 2
    assert main(["decode", str(src), "-o", str(tmp_path / "y.png")]) == 2
    assert "it is a PNG image" in capsys.readouterr().err
    # 8-bit RGB: WebP (lossless, the decoded pixels exactly) and JPEG work.
    assert main(["decode", str(lig), "-o", str(tmp_path / "x.webp"), "-q"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.webp").convert("RGB")),
                          np.asarray(Image.open(_decode_png(lig, tmp_path))))
    assert main(["decode", str(lig), "-o", str(tmp_path / "x.jpg"), "-q"]) == 0
    assert Image.open(tmp_path / "x.jpg").size == (70, 40)
    # 16-bit to WebP and alpha to JPEG are refused, not silently mangled.
    g16 = tmp_path / "g16.png"
    Image.fromarray((smooth_image(20, 30)[:, :, 0] * 65535).astype(np.uint16)).save(g16)
    assert main(["encode", str(g16), str(tmp_path / "g16.lig"), *enc]) == 0
    assert main(["decode", str(tmp_path / "g16.lig"), "-o", str(tmp_path / "g.webp")]) == 2
    assert "8-bit" in capsys.readouterr().err
    rgba = tmp_path / "rgba.png"
    Image.fromarray((smooth_image(20, 30, 4) * 255).astype(np.uint8)).save(rgba)
    assert main(["encode", str(rgba), str(tmp_path / "rgba.lig"), *enc]) == 0
    assert main(["decode", str(tmp_path / "rgba.lig"), "-o", str(tmp_path / "a.jpg")]) == 2
    assert "alpha" in capsys.readouterr().err
    leftovers = {p.name for p in tmp_path.iterdir()} - {"in.png", "in.lig", "x.webp", "x.jpg", "ref.png", "g16.png",
                                                        "g16.lig", "rgba.png", "rgba.lig"}
    assert not leftovers
    assert "Traceback" not in capsys.readouterr().err


def _decode_png(lig, tmp_path):
    out = tmp_path / "ref.png"
    assert main(["decode", str(lig), "-o", str(out), "-q", "--force"]) == 0
    return out


def test_info_check_finds_a_damaged_chunk(tmp_path, capsys):
    """SCENARIO: `info --check` on a good file, then on one with a byte of a chunk flipped.
    EXPECTED RESULT: 0 and a confirmation, then exit code 2 naming the tile and level (plain `info`
    only reads the header and index, so it still succeeds)."""
    src = _png(tmp_path / "in.png", 40, 70)
    lig = tmp_path / "in.lig"
    assert main(["encode", str(src), str(lig), "-n", "60", "--steps", "5", "--workers", "1", "-q"]) == 0
    assert main(["info", str(lig), "--check"]) == 0
    assert "every chunk reads and decodes" in capsys.readouterr().out
    data = bytearray(lig.read_bytes())
    data[-3] ^= 0x10  # inside the last chunk (level 1)
    lig.write_bytes(bytes(data))
    assert main(["info", str(lig)]) == 0
    capsys.readouterr()
    assert main(["info", str(lig), "--check"]) == 2
    err = capsys.readouterr().err
    assert "level 1" in err and "Traceback" not in err


def test_unreachable_psnr_target_warns(tmp_path, capsys):
    src = _png(tmp_path / "in.png", 24, 24)
    out = tmp_path / "p.lig"
    assert main(["encode", str(src), str(out), "--psnr", "99", "--steps", "5", "--workers", "1", "-q"]) == 0
    assert "not reached" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    """SCENARIO: Ctrl-C arrives inside a numba kernel, which re-raises it as a SystemError whose
    cause is the KeyboardInterrupt. EXPECTED RESULT: a one-line message, exit code 130."""
    from ligcodec.codec import ratecontrol

    def interrupted(*a, **k):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(<function backward>) returned a result with an exception set") from e

    monkeypatch.setattr(ratecontrol, "encode", interrupted)
    src = _png(tmp_path / "in.png", 24, 24)
    assert main(["encode", str(src), str(tmp_path / "x.lig"), "-q"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_effort_default_is_the_encoders():
    """The command line states the default effort itself (it does not import the encoder)."""
    from ligcodec.cli import cli
    from ligcodec.codec.encoder import DEFAULT_EFFORT

    opt = next(p for p in cli.commands["encode"].params if p.name == "effort")
    assert opt.default == DEFAULT_EFFORT


def _one_line_error(capsys, *words):
    """The last command printed exactly one line, `ligcodec: error: ...`, containing ``words``."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ligcodec: error: "), err
    for w in words:
        assert w in lines[0], (w, err)
    return lines[0]


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    """SCENARIO: every command given an input that is missing, a directory, not an image, or (to
    decode, info, render) not a .lig file or model. EXPECTED RESULT: one line `ligcodec: error:
    ...` naming the file, exit code 2, and no output file."""
    src = _png(tmp_path / "in.png", 20, 30)
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    notlig = tmp_path / "notlig.lig"
    notlig.write_text("hello")
    d = tmp_path / "adir"
    d.mkdir()
    out = tmp_path / "out.lig"
    enc = ["-n", "20", "--steps", "3", "--workers", "1", "-q"]
    cases = [
        (["encode", str(tmp_path / "missing.png"), str(out), *enc], "no such file"),
        (["encode", str(d), str(out), *enc], "is a directory"),
        (["encode", str(junk), str(out), *enc], "junk.png"),
        (["fit", str(tmp_path / "missing.png"), str(tmp_path / "m.npz"), *enc], "no such file"),
        (["fit", str(d), str(tmp_path / "m.npz"), *enc], "is a directory"),
        (["fit", str(junk), str(tmp_path / "m.npz"), *enc], "junk.png"),
        (["decode", str(tmp_path / "missing.lig"), "-o", str(tmp_path / "o.png")], "no such file"),
        (["decode", str(d), "-o", str(tmp_path / "o.png")], "is a directory"),
        (["decode", str(notlig), "-o", str(tmp_path / "o.png")], "not a .lig file"),
        (["decode", str(src), "-o", str(tmp_path / "o.png")], "PNG"),
        (["info", str(tmp_path / "missing.lig")], "no such file"),
        (["info", str(d)], "is a directory"),
        (["info", str(notlig)], "not a .lig file"),
        (["render", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "o.png")], "no such file"),
        (["render", str(d), "-o", str(tmp_path / "o.png")], "is a directory"),
        (["render", str(notlig), "-o", str(tmp_path / "o.png")], "cannot read model"),
    ]
    for argv, word in cases:
        assert main(argv) == 2, argv
        _one_line_error(capsys, word)
    assert {p.name for p in tmp_path.iterdir()} == {"in.png", "junk.png", "notlig.lig", "adir"}


def test_unreadable_input_is_one_line(tmp_path, capsys, monkeypatch):
    """SCENARIO: an input the user may not read (permission denied; simulated where the tests run
    as root, who may read anything) and one that fails with an I/O error while it is decoded.
    EXPECTED RESULT: one line naming the file and the reason, exit code 2."""
    import builtins
    import os

    src = _png(tmp_path / "in.png", 20, 30)
    real_open = builtins.open

    def denied(file, *a, **k):
        if str(file) == str(src):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    if os.geteuid() != 0:
        src.chmod(0)
    else:
        monkeypatch.setattr(builtins, "open", denied)
    for cmd in (["encode", str(src), str(tmp_path / "o.lig")], ["fit", str(src), str(tmp_path / "o.npz")],
                ["decode", str(src)], ["info", str(src)], ["render", str(src)]):
        assert main(cmd) == 2, cmd
        _one_line_error(capsys, "in.png", "Permission denied")
    monkeypatch.undo()
    src.chmod(0o644)

    import ligcodec.source as io

    def eio(*a, **k):
        raise OSError(5, "Input/output error", str(src))

    monkeypatch.setattr(io, "read_image", eio)
    assert main(["fit", str(src), str(tmp_path / "o.npz"), "-n", "10", "-q"]) == 2
    _one_line_error(capsys, "in.png", "Input/output error")


def test_bad_outputs_are_one_line_and_exit_2(tmp_path, capsys):
    """SCENARIO: every command that writes given an output that is a directory, in a directory that
    does not exist, where no file can be created (/proc), an existing file without --force, or (fit)
    not named .npz. EXPECTED RESULT: one line `ligcodec: error: ...`, exit code 2, before any work,
    and nothing left behind."""
    import os

    src = _png(tmp_path / "in.png", 20, 30)
    lig, model = tmp_path / "in.lig", tmp_path / "m.npz"
    enc = ["-n", "20", "--steps", "3", "--workers", "1", "-q"]
    assert main(["encode", str(src), str(lig), *enc]) == 0
    assert main(["fit", str(src), str(model), *enc]) == 0
    (tmp_path / "adir").mkdir()
    (tmp_path / "exists.png").write_bytes(b"x")
    (tmp_path / "exists.lig").write_bytes(b"x")
    (tmp_path / "exists.npz").write_bytes(b"x")
    outputs = {  # output -> words of the message
        str(tmp_path / "adir"): ["is a directory"],
        str(tmp_path / "nodir" / "x.{}"): ["does not exist"],
        "exists.{}": ["exists", "--force"],
    }
    if os.path.isdir("/proc/self"):  # Linux: no file can be created in /proc, not even by root
        outputs["/proc/x.{}"] = ["cannot write /proc/x.", "no file can be created in /proc"]
    for out, words in outputs.items():
        if out.startswith("exists"):
            out = str(tmp_path / out)
        for argv in (["encode", str(src), out.format("lig"), *enc], ["fit", str(src), out.format("npz"), *enc],
                     ["decode", str(lig), "-o", out.format("png")], ["render", str(model), "-o", out.format("png")]):
            assert main(argv) == 2, argv
            _one_line_error(capsys, *words)
    assert main(["fit", str(src), str(tmp_path / "m.png"), *enc]) == 2
    _one_line_error(capsys, "m.npz")
    assert main(["decode", str(lig), "-o", str(lig), "--force"]) == 2
    _one_line_error(capsys, "refusing to overwrite the input")
    assert {p.name for p in tmp_path.iterdir()} == {"in.png", "in.lig", "m.npz", "adir", "exists.png", "exists.lig",
                                                    "exists.npz"}
    assert not [p for p in (tmp_path / "adir").iterdir()]


def test_failed_write_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """SCENARIO: the disk fills up while the output is written (after the up-front checks passed):
    encode's file, decode's PNG and TIFF, fit's model. EXPECTED RESULT: one line naming OUTPUT and
    the reason, exit code 2; no partial output or temporary file; an encode's finished tiles are
    kept and the message says how to go on from them."""
    import errno

    import ligcodec.codec.encoder as encoder
    import ligcodec.io as io
    import ligcodec.model as model_mod

    src = _png(tmp_path / "in.png", 20, 30)
    lig = tmp_path / "in.lig"
    enc = ["-n", "20", "--steps", "3", "--workers", "1", "-q"]
    assert main(["encode", str(src), str(lig), *enc]) == 0

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(encoder, "write_lig", full)
        assert main(["encode", str(src), str(tmp_path / "x.lig"), *enc]) == 2
        assert "x.lig.partial" in _one_line_error(capsys, "x.lig", "No space left on device", "again")
    (tmp_path / "x.lig.partial").unlink()
    for ext, fn in (("png", "write_image"), ("tif", "write_tiff_tiled")):
        with monkeypatch.context() as m:
            m.setattr(io, fn, full)
            assert main(["decode", str(lig), "-o", str(tmp_path / f"x.{ext}")]) == 2
            _one_line_error(capsys, f"x.{ext}", "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(model_mod.Model, "save", lambda self, path: (open(path, "wb").write(b"x"), full()))
        assert main(["fit", str(src), str(tmp_path / "x.npz"), *enc]) == 2
        _one_line_error(capsys, "x.npz", "No space left on device")
    assert {p.name for p in tmp_path.iterdir()} == {"in.png", "in.lig"}


def test_bad_option_values_are_one_line(tmp_path, capsys):
    """SCENARIO: bad --region and --scale values to decode and render, a --quality out of range.
    EXPECTED RESULT: one line `ligcodec: error: ...` naming the option, exit code 2 (a missing
    argument or an unknown option still gets click's usage message, also exit code 2)."""
    src = _png(tmp_path / "in.png", 20, 30)
    lig, model = tmp_path / "in.lig", tmp_path / "m.npz"
    enc = ["-n", "20", "--steps", "3", "--workers", "1", "-q"]
    assert main(["encode", str(src), str(lig), *enc]) == 0
    assert main(["fit", str(src), str(model), *enc]) == 0
    o = ["-o", str(tmp_path / "o.png")]
    for cmd in (["decode", str(lig)], ["render", str(model)]):
        for args, word in ((["--region", "1,2"], "--region"), (["--region", "a,b,c,d"], "--region"),
                           (["--region", "0,0,999,5"], "region"), (["--region", "0,0,0,5"], "region"),
                           (["--region", "-5,0,4,4"], "region"), (["--scale", "abc"], "--scale"),
                           (["--scale", "0"], "scale"), (["--scale", "-1"], "scale"), (["--scale", "nan"], "scale"),
                           (["--scale", "inf"], "scale")):
            assert main([*cmd, *args, *o]) == 2, (cmd, args)
            _one_line_error(capsys, word)
    assert main(["encode", str(src), str(tmp_path / "q.lig"), "-Q", "101"]) == 2
    _one_line_error(capsys, "--quality")
    assert main(["decode", str(lig), "--png-level", "10", *o]) == 2
    _one_line_error(capsys, "--png-level")
    assert main(["encode", str(src)]) == 2
    assert "Usage:" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "q.lig").exists()


def test_decode_pyramid_writes_an_ome_tiff_pyramid(tmp_path, capsys):
    """SCENARIO: `ligcodec decode x.lig -o x.ome.tif --pyramid`, then the same with a .png name and
    with --scale.
    EXPECTED RESULT: a tiled OME-TIFF whose levels halve down from full size, each level's pixels
    those of read(1/2^l); the other two are one-line errors, exit code 2."""
    import tifffile

    import ligcodec
    from ligcodec.cli import main

    rng = np.random.default_rng(2)
    a = (rng.random((300, 520, 3)) * 255).astype(np.uint8)
    lig = tmp_path / "x.lig"
    ligcodec.encode(a, lig, gaussians=300, effort=1, workers=1)
    out = tmp_path / "x.ome.tif"
    assert main(["decode", str(lig), "-o", str(out), "--pyramid", "-q"]) == 0
    with tifffile.TiffFile(out) as tf, ligcodec.open(lig) as im:
        levels = tf.series[0].levels
        assert [lv.shape[:2] for lv in levels] == [(300, 520), (150, 260)]
        assert np.array_equal(levels[1].asarray(), im.read(0.5))
    capsys.readouterr()
    assert main(["decode", str(lig), "-o", str(tmp_path / "x.png"), "--pyramid"]) == 2
    assert main(["decode", str(lig), "-o", str(tmp_path / "y.ome.tif"), "--pyramid", "--scale", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("ligcodec: error:") for e in err)


def test_encode_progress_counts_tiles_through_coding_rounds(tmp_path, capsys, monkeypatch):
    """SCENARIO: `encode --bpp` of a 2 x 1 tile image whose rate loop codes the tiles more than once
    (tolerance forced to 0, range widened, the rate probe's calibration made 15 % wrong).
    EXPECTED RESULT: the progress line counts fits and codings out of the 2 tiles, never more
    ("code again for the size" in the later rounds), and ends at the last tile."""
    import re

    from ligcodec.codec import encoder, rateprobe
    from ligcodec.fit import plan

    monkeypatch.setattr(encoder, "RATE_TOLERANCE", 0.0)
    monkeypatch.setattr(encoder, "RATE_MAX_SHIFT", 64)
    monkeypatch.setattr(rateprobe, "CODED_OVER_PLAIN", 1.15)
    monkeypatch.setattr(encoder, "RECOUNT_MISS", float("inf"))  # one fit (the recount: next test)
    monkeypatch.setattr(plan, "SINGLE_TILE_PIXELS", 0)  # a small image is one tile; this needs two
    src = tmp_path / "in.png"
    Image.fromarray(np.round(smooth_image(64, 300) * 255).astype(np.uint8)).save(src)  # 2 tiles of 256
    out = tmp_path / "o.lig"
    argv = ["encode", str(src), str(out), "--bpp", "2", "--steps", "10", "--workers", "1"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) tiles", err)]
    assert counts and all(b == 2 and 0 <= a <= 2 for a, b in counts), counts
    assert "code again for the size (2), 2/2 tiles" in err


def test_encode_progress_starts_over_for_a_recount(tmp_path, capsys, monkeypatch):
    """SCENARIO: `encode --bpp` of a 2 x 1 tile image whose first coding misses the target by more
    than the recount threshold (forced to 0), so the tiles are fitted again with another count.
    EXPECTED RESULT: the progress counts the second fit from 0 of the 2 tiles again (never past 2/2),
    and the summary line says the encode took 2 passes."""
    import re

    from ligcodec.codec import encoder
    from ligcodec.fit import plan

    monkeypatch.setattr(encoder, "RECOUNT_MISS", 0.0)
    monkeypatch.setattr(plan, "SINGLE_TILE_PIXELS", 0)  # a small image is one tile; this needs two
    src = tmp_path / "in.png"
    Image.fromarray(np.round(smooth_image(64, 300) * 255).astype(np.uint8)).save(src)
    argv = ["encode", str(src), str(tmp_path / "o.lig"), "--bpp", "2", "--steps", "10", "--workers", "1"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    counts = [(int(a), int(b)) for a, b in re.findall(r"fit (\d+)/(\d+) tiles", err)]
    assert all(b == 2 and 0 <= a <= 2 for a, b in counts), counts
    assert [a for a, _ in counts].count(0) == 2, counts
    assert "(2 passes)" in err


@pytest.mark.parametrize("gaussians, tiles", [(100, 1), (800, 3)])
def test_encode_progress_counts_the_tiles_the_count_chose(tmp_path, capsys, gaussians, tiles):
    """SCENARIO: `encode` of a 520 x 40 image, which is one tile (auto_tile) unless its count exceeds
    SINGLE_TILE_DENSITY a pixel (693 Gaussians here), with 100 and with 800 Gaussians.
    EXPECTED RESULT: the progress line counts out of the tiles that the count chose (1, then 3 of
    256 px: auto_tile's usual choice), from its first line, and the file has that many tiles."""
    import re

    import ligcodec

    src = tmp_path / "in.png"
    Image.fromarray(np.round(smooth_image(40, 520) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "o.lig"
    argv = ["encode", str(src), str(out), "--gaussians", str(gaussians), "--steps", "4", "--workers", "1"]
    assert main(argv) == 0
    counts = [int(b) for b in re.findall(r"\d+/(\d+) tiles", capsys.readouterr().err)]
    assert counts and set(counts) == {tiles}, counts
    with ligcodec.open(out) as im:
        assert im.model.n_tiles == tiles
    # A resumed encode's first line comes before any fresh start: the command plans the tiles itself.
    from ligcodec.codec.ratecontrol import planned_tiles
    from ligcodec.fit import FitConfig
    from ligcodec.source import open_source

    assert planned_tiles(open_source(src), 7, FitConfig(), gaussians=gaussians) == tiles
    assert planned_tiles(open_source(src), 7, FitConfig(), psnr=40.0) == 1  # its first pass: not known
