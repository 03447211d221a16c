"""The ``ligcodec`` command line: each command is a thin layer over the Python API."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from .errors import LigError, LigInputError


def _region(value):
    if value is None:
        return None
    try:
        parts = [int(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4:
        raise LigInputError(f"--region {value!r}: expected x,y,w,h as four integers, e.g. 0,0,512,512")
    return tuple(parts)


def _fit_options(fn):
    """Options shared by `encode` and `fit` (the budget, the levels and where the work runs)."""
    opts = [
        click.argument("input", type=click.Path(path_type=Path)),
        click.argument("output", type=click.Path(path_type=Path)),
        click.option("--gaussians", "-n", type=click.IntRange(min=1), help="Gaussian budget (count). "
                     "encode lowers it, with a warning, where the file would near the image's raw size."),
        click.option("--density", type=click.FloatRange(min=0, min_open=True),
                     help="Gaussians per pixel (encode: capped as -n is)."),
        click.option("--levels", type=click.IntRange(1, 2), default=2, show_default=True,
                     help="1: one level; 2: coarse + detail."),
        click.option("--steps", type=click.IntRange(min=0), help="Optimiser steps per level per tile."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Same seed, input and options give the same output."),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Processes working on tiles in parallel (0: one per core; never more than the tiles). "
                          "Does not change the output."),
        click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists."),
        click.option("--quiet", "-q", is_flag=True, help="No progress output."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ligcodec")
def cli():
    """ligcodec: large images as levels of 2D Gaussians.

    \b
    ligcodec encode big.tif out.lig --bpp 1              # compress
    ligcodec decode out.lig --scale 0.25 -o small.png     # any scale / region
    ligcodec info out.lig
    ligcodec fit photo.png model.npz -n 40000             # research: unquantised float model
    ligcodec render model.npz --scale 0.5                 # ... rendered at any scale
    """


@cli.command()
@_fit_options
@click.option("--quality", "-Q", type=click.IntRange(1, 100),
              help="1..100, default 50: sets the Gaussian density (every 12.5 points double the Gaussians), "
                   "capped so that no file is larger than the image's raw samples (the top qualities can then "
                   "give the same file).")
@click.option("--bpp", type=click.FloatRange(min=0, min_open=True),
              help="Target size in bits per pixel (the tiles are coded again with other steps while the file "
                   "misses by over 2 %, and fitted again once with another count where the steps cannot land it "
                   "within 5 %: see README.md; --psnr searches).")
@click.option("--psnr", type=click.FloatRange(min=0, min_open=True),
              help="Target PSNR in dB: the smallest file found that reaches it (up to 4 encodes).")
# default: codec.encoder.DEFAULT_EFFORT (not imported here, to keep the command line quick to start)
@click.option("--effort", type=click.IntRange(1, 9), default=7, show_default=True,
              help="1 fastest .. 9 best: optimiser steps 100, 200, 350, 600, 1000, 1500, 2000, 3000, 5000 per "
                   "level per tile (--steps overrides).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the tiles on a Dask distributed cluster (e.g. tcp://host:8786) instead of local "
                   "processes; its workers must see INPUT at the same path. Does not change the output.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue an interrupted encode of the same input and options from the tiles kept in "
                   "OUTPUT.partial (--no-resume starts over).")
@click.option("--progressive", is_flag=True,
              help="Fit level 0 to stand alone at 1/4 scale: `decode --scale 0.25` (or smaller) then reads "
                   "only level-0 bytes (about a quarter of the file) and is faster, but it is below a default "
                   "file's 1/4 read and full resolution loses too, by amounts that depend on the image and grow "
                   "at low effort (figures and their settings: README.md, BENCHMARKS.md \"Progressive files\"). "
                   "For files read at reduced scale over slow storage or a network.")
def encode(input, output, gaussians, quality, bpp, psnr, density, levels, effort, steps, seed, workers, force,
           quiet, scheduler, resume, progressive):
    """Compress INPUT into OUTPUT.lig.

    INPUT: PNG, JPEG or WebP (decoded whole, EXIF orientation applied) or TIFF/BigTIFF (tiled or
    striped, pyramids use level 0; read lazily tile by tile, so images larger than memory stream).
    8- or 16-bit, grey, grey+alpha, RGB or RGBA.
    """
    from .codec.ratecontrol import encode as encode_image, planned_tiles
    from .fit import FitConfig
    from .source import open_source

    _check_encode_args(input, output, force, (gaussians, quality, bpp, psnr, density))
    src = open_source(input)
    extra = {} if steps is None else {"steps": steps}
    config = FitConfig(levels=levels)
    tiles = planned_tiles(src, effort, config, gaussians=gaussians, quality=quality, bpp=bpp, psnr=psnr,
                          density=density)
    report = _EncodeProgress(output, quiet, tiles)
    try:
        r = encode_image(src, output, gaussians=gaussians, quality=quality, bpp=bpp, psnr=psnr, density=density,
                         seed=seed, workers=workers,
                         effort=effort, config=config, progress=report, scheduler=scheduler,
                         resume=resume, progressive=progressive, **extra)
    except BaseException as e:
        _raise_encode_error(e, output, resume, line_open=not quiet and report.first is not None)
        raise
    _report_encode(r, src, output, quiet, gaussians=gaussians, density=density, bpp=bpp, psnr=psnr)


def _check_encode_args(input: Path, output: Path, force: bool, targets: tuple):
    """Refuse a bad ``encode`` command line now, before the input is opened and tiles are fitted
    (which can take hours): an unreadable INPUT, an OUTPUT named like an image (a .lig is written
    under it), more than one of the size ``targets`` (they contradict each other), an OUTPUT that
    cannot be written."""
    from .io import IMAGE_SUFFIXES

    _check_input(input)
    if output.suffix.lower() in IMAGE_SUFFIXES:
        raise LigInputError(f"OUTPUT {output} is named like an image, but encode writes a .lig file: "
                            f"name it {output.with_suffix('.lig').name}")
    if sum(x is not None for x in targets) > 1:
        raise click.UsageError("give at most one of --quality, --gaussians, --bpp, --psnr, --density")
    _check_output(output, force, input)


class _EncodeProgress:
    """``encode``'s progress line on stderr, called as ``progress(done, total)`` by the encoder. A
    class rather than a closure because the command must know afterwards whether a line was begun
    (``first`` is not None), to end it when Ctrl-C stops the encode."""

    def __init__(self, output: Path, quiet: bool, tiles: int):
        self.output, self.quiet, self.tiles = output, quiet, tiles
        self.first = None  # ``done`` when the current encode (or --psnr pass) began; None before any call
        self.t0 = time.perf_counter()

    def __call__(self, done, total):
        from .codec.encoder import journal_path

        if self.quiet:
            return
        # Every tile is fitted (pass 1), then quantised and coded (pass 2); a --bpp encode may code
        # them again with other steps (the total then grows by a round of tiles), or fit them again
        # with another count (it then starts over at 0, like a --psnr pass).
        if done == 0:  # a new encode (or pass) fits and codes every tile: its count may set other tiles
            self.tiles = max(1, total // 2)
        tiles = self.tiles
        if done <= tiles:
            where = f"fit {done}/{tiles} tiles"
        else:
            again, k = divmod(done - tiles - 1, tiles)
            where = (f"fitted; code {k + 1}/{tiles} tiles" if not again else
                     f"fitted; code again for the size ({again + 1}), {k + 1}/{tiles} tiles")
        if self.first is None or done == 0:  # an encode (or a --psnr pass) starts
            self.first, self.t0 = done, time.perf_counter()
            if done:
                click.echo(f"resuming from {journal_path(self.output)}: {where}", err=True)
            else:  # a first line at once: the first tile can take a while
                click.echo(f"\rencode: {where} ...", nl=False, err=True)
            return
        el = time.perf_counter() - self.t0
        new = done - self.first
        eta = f", about {el / new * (total - done):.0f} s left" if new and done < total else ""
        click.echo(f"\rencode: {where}, {el:.0f} s{eta}   ", nl=done == total, err=True)


def _raise_encode_error(e: BaseException, output: Path, resume: bool, line_open: bool):
    """Called while handling ``e``, a failed encode: raise Ctrl-C or an OSError as one line that says
    whether the finished tiles were kept and how to go on from them (hours of fitting need not be
    lost); return for anything else, for the caller to re-raise. ``line_open``: a progress line
    without its newline is on stderr."""
    from .codec.encoder import journal_path

    if _interrupted(e):
        if line_open:
            click.echo("", err=True)  # end the progress line
        kept = journal_path(output)
        again = "run the same command again" if resume else "run it again without --no-resume"
        raise _Interrupted("encode interrupted" + (f"; the finished tiles are kept in {kept}: {again} to go "
                                                   "on from them" if kept.exists() else ""))
    if isinstance(e, OSError):  # e.g. the disk filled up, or the directory became read-only
        kept = journal_path(output)
        why = _os_error(e, output) if e.filename else f"cannot encode to {output}: {e.strerror or e}"
        raise LigInputError(why + (f"; the finished tiles are kept in {kept}: run the same command again, "
                                   "once it can be written, to go on from them" if kept.exists() else "")) from None


def _report_encode(r, src, output: Path, quiet: bool, gaussians, density, bpp, psnr):
    """Say what ``encode`` wrote (unless ``quiet``), then warn -- even with -q -- where the file is
    not what was asked for: larger than the image's raw samples, capped below the asked budget, or
    short of the --psnr target."""
    from .codec.ratecontrol import raw_size

    if not quiet:
        click.echo(f"{output}: {r.bytes} bytes, {r.bpp:.3f} bpp, {r.gaussians} Gaussians, "
                   f"PSNR {r.psnr:.2f} dB, {r.seconds:.1f} s"
                   + (f" ({r.passes} passes)" if r.passes > 1 else ""), err=True)
    asked = next((f"{k} {v:g}" for k, v in (("--gaussians", gaussians), ("--density", density), ("--bpp", bpp))
                  if v is not None), None)
    raw = raw_size(src.width, src.height, src.channels, 8 if src.bit_depth == 32 else src.bit_depth)
    if r.bytes > raw:  # one Gaussian and the header already take more: said even with -q
        click.echo(f"ligcodec: warning: the image is so small that even a one-Gaussian file ({r.bytes} bytes) "
                   f"is larger than its raw samples ({raw} bytes)", err=True)
    elif asked and r.requested:  # said even with -q: the file is not what was asked for
        click.echo(f"ligcodec: warning: {asked} asks for a file near or above the size of the image's raw "
                   f"samples ({raw} bytes); capped at {r.gaussians} Gaussians, {r.bytes} bytes", err=True)
    if psnr is not None and r.psnr < psnr:  # said even with -q: the file is not what was asked for
        click.echo(f"ligcodec: warning: the target PSNR {psnr:g} dB was not reached; the best found is "
                   f"{r.psnr:.2f} dB at {r.bpp:.3f} bpp", err=True)


@cli.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="PNG or TIFF (tiled, written in bands: any size; both keep 16 bits), or 8-bit "
                   "WebP (lossless) or JPEG (quality 95, no alpha); default: INPUT's name with .png (.tif "
                   "above 64 MP) next to it.")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Output size = scale x image size (e.g. 0.25).")
@click.option("--region", help="x,y,w,h window in output pixels (at --scale).")
@click.option("--preview", is_flag=True, help="Coarse level only: reads only level-0 bytes, lower quality.")
@click.option("--all-levels", is_flag=True,
              help="Render every level even where a progressive file's level 0 stands alone (--scale at most "
                   "its level0_scale, see `info`): reads the whole file, for a better image there.")
@click.option("--pyramid", is_flag=True,
              help="With -o X.ome.tif: a tiled, pyramidal OME-TIFF (power-of-two levels as SubIFDs, written band "
                   "by band in bounded memory) that QuPath, tifffile and OpenSlide-style readers open at every level.")
@click.option("--png-level", type=click.IntRange(0, 9),
              help="zlib level of a PNG OUTPUT, 0-9. The default, 1, writes fastest; 6 (Pillow's default) "
                   "makes files some 10-20 % smaller and takes several times as long as the decode.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="Do not say what was written.")
def decode(input, output, scale, region, preview, all_levels, pyramid, png_level, force, quiet):
    """Decompress INPUT.lig to an image, at any scale and region.

    A progressive file (`encode --progressive`) read at --scale 0.25 or smaller reads only its
    level-0 bytes; any other read renders every level.
    """
    from .image import LigImage
    from .io import TIFF_SUFFIXES, check_output_format, write_tiff_tiled
    from .render.contract import check_region, check_scale, output_size

    if preview and all_levels:
        raise click.UsageError("give --preview (level 0 only) or --all-levels, not both")
    _check_input(input)
    if output is not None:
        _check_output(output, force, input)
    if pyramid:
        return _decode_pyramid(input, output, scale, region, preview or all_levels, force, quiet)
    with LigImage(input) as img:
        levels = [0] if preview else list(range(img.header.levels)) if all_levels else None
        depth = img.header.bit_depth
        ow, oh = output_size(img.header.width, img.header.height, check_scale(scale))
        x, y, w, h = check_region(_region(region), ow, oh, max_pixels=None)
        if output is None:
            big = w * h > 64_000_000
            output = input.with_suffix(".tif" if big else ".png")
        _check_output(output, force, input)
        check_output_format(output, img.header.channels, depth)
        if output.suffix.lower() in TIFF_SUFFIXES:
            # Tiled (Big)TIFF, rendered one band of tiles at a time: memory does not grow with size.
            try:
                write_tiff_tiled(output, w, h, img.header.channels, img.dtype,
                                 lambda by, bh: img.read(scale, (x, y + by, w, bh), levels))
            except OSError as e:
                raise LigInputError(_os_error(e, output)) from None
        else:
            check_region((x, y, w, h), ow, oh)  # in memory: within the render limit
            _write_output(img.read(scale=scale, region=(x, y, w, h), levels=levels), output, input, force, depth,
                          quiet, png_level)
            return
    if not quiet:
        click.echo(f"wrote {output} ({w}x{h}, {img.header.channels} channel(s), {depth}-bit, tiled TIFF)", err=True)


@cli.command()
@_fit_options
def fit(input, output, gaussians, density, levels, steps, seed, workers, force, quiet):
    """Research: fit INPUT and save the unquantised float model to OUTPUT (.npz)."""
    from .fit import FitConfig, FitSettings, fit as fit_image
    from .source import read_image

    _check_input(input)
    _check_output(output, force, input)
    if output.suffix.lower() != ".npz":
        raise LigInputError(f"OUTPUT {output}: fit writes a NumPy .npz model: name it "
                            f"{output.with_suffix('.npz').name}")
    img = read_image(input)
    settings = FitSettings() if steps is None else FitSettings(steps=steps)
    model = fit_image(img, gaussians, density=density, progress=not quiet,
                      config=FitConfig(levels=levels, seed=seed, workers=workers, level=settings))
    tmp = output.with_name(f".{output.name}.part.npz")
    try:
        model.save(tmp)
        tmp.replace(output)
    except OSError as e:
        raise LigInputError(_os_error(e, output)) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    if not quiet:
        click.echo(f"{output}: {model.n_gaussians} Gaussians, PSNR {model.info['psnr']:.2f} dB, "
                   f"{model.info['seconds']:.1f} s", err=True)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="PNG or TIFF; default: MODEL's name with .png (.tif above 64 MP) next to it.")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Output size = scale x image size.")
@click.option("--region", help="x,y,w,h window in output pixels.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def render(model, output, scale, region, force):
    """Research: render MODEL (.npz from `fit`) at any scale and region."""
    from .model import Model

    _check_input(model)
    if output is not None:
        _check_output(output, force, model)
    m = Model.load(model)
    out = m.render(scale=scale, region=_region(region))
    _write_output(out, output, model, force, m.info.get("bit_depth") if m.info.get("bit_depth") in (8, 16) else 8)


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--verbose", "-v", is_flag=True, help="Quantiser steps, encoder settings and bits per Gaussian "
              "per attribute (.lig).")
@click.option("--check", is_flag=True, help="Also read and decode every chunk: CRCs and entropy-coded data "
              "(exit code 2 and the first problem found, with its tile and level, if any).")
def info(file, verbose, check):
    """Describe FILE, a .lig file (or a .npz model from `fit`): size, channels, tiles, Gaussians per
    level. The levels are the codec's Gaussian levels (0 coarse, 1 detail), not pyramid levels."""
    from .model import Model

    _check_input(file)
    if file.suffix.lower() != ".npz":
        return _info_lig(file, verbose, check)
    model = file
    m = Model.load(model)
    click.echo(f"{model}: {m.width}x{m.height}, {m.channels} channel(s), {m.n_tiles} tile(s) of {m.tile} px")
    for i, n in enumerate(m.level_counts()):
        click.echo(f"  level {i}: {n} Gaussians")
    if "psnr" in m.info:
        click.echo(f"  fit PSNR {m.info['psnr']:.2f} dB in {m.info.get('seconds', 0):.1f} s")


def _info_lig(path: Path, verbose: bool, check: bool = False):
    from .container import LigReader

    with LigReader(path) as r:
        h = r.header
        nx, ny = h.grid
        click.echo(f"{path}: {h.width}x{h.height}, {h.channels} channel(s), {h.bit_depth}-bit, "
                   f"format {r.prefix.major}.{r.prefix.minor}, {r.file_size} bytes = "
                   f"{r.file_size * 8 / (h.width * h.height):.3f} bpp")
        click.echo(f"  {nx}x{ny} tiles of {h.tile} px, {h.levels} Gaussian level(s), colour {h.colour_transform}")
        if h.level0_scale is not None:
            click.echo(f"  progressive: level 0 alone serves reads at scale <= {h.level0_scale:g}")
        if h.deblock is not None:
            click.echo(f"  border filter: ramps over {2 * h.deblock[0]} px for steps up to "
                       f"{h.deblock[1] * (2 ** h.bit_depth - 1):.1f} code values (fading out by twice that)")
        for lvl in range(h.levels):
            es = r.index.entries[lvl * h.n_tiles : (lvl + 1) * h.n_tiles]
            n = sum(e.count for e in es)
            b = sum(e.length for e in es)
            click.echo(f"  level {lvl}: {n} Gaussians, {b} bytes" + (f", {b * 8 / n:.1f} bits/Gaussian" if n else ""))
        if verbose:
            def g3(v):
                return f"[{', '.join(map(g3, v))}]" if isinstance(v, (list, tuple)) else f"{v:.4g}"

            click.echo(f"  steps: position {g3(h.pos_step)} px, chol {g3(h.chol_step)}, colour {g3(h.colour_step)}")
            _bits_per_attribute(r, h)
            # The encoder map is informative (spec section 2): print whatever a file holds there.
            for k, v in sorted(h.encoder.items(), key=lambda kv: str(kv[0])):
                if k not in ("fit", "bits_per_gaussian"):
                    click.echo(f"  encoder {k}: {v}")
    if check:
        from .image import LigImage

        with LigImage(path) as img:  # batch decodes: every chunk read, CRC-checked and decoded
            for lvl in range(h.levels):
                for t in range(0, h.n_tiles, 256):  # bounded memory on gigapixel files
                    img.model.gather(list(range(t, min(t + 256, h.n_tiles))), [lvl])
        click.echo("  check: every chunk reads and decodes")


def _bits_per_attribute(r, h):
    """``info --verbose``: each level's bits per Gaussian by attribute, from its chunks' symbols
    under their own models (:func:`~ligcodec.codec.tile.attribute_bits`), and its chunks' parts."""
    from .codec.tile import attribute_bits, chunk_layout, chunk_parts

    layout = chunk_layout(r.prefix.major, r.prefix.minor)
    for lvl in range(h.levels):
        total, n, parts, chunks = {}, 0, 0, 0
        for t in range(h.n_tiles):
            e = r.index.entries[lvl * h.n_tiles + t]
            where = f"tile {t}, level {lvl}"
            data = r.chunk(lvl, t)  # read (and CRC-checked) once for both counts
            for k, v in attribute_bits(data, e.count, h.channels, where, layout).items():
                total[k] = total.get(k, 0.0) + v
            if e.count:
                parts += len(chunk_parts(data, e.count, where, layout))
                chunks += 1
            n += e.count
        if n:
            bits = ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(total.items()))
            click.echo(f"  level {lvl} bits per Gaussian: {bits} ({parts} part(s) in {chunks} chunk(s))")


def _decode_pyramid(input: Path, output, scale, region, levels_given, force: bool, quiet: bool):
    """``decode --pyramid``: the whole image, every power-of-two level, to a pyramidal OME-TIFF."""
    from .ometiff import write_ome_pyramid

    if scale != 1.0 or region or levels_given:
        raise LigInputError("--pyramid writes the whole image at every power-of-two scale: drop --scale, --region, "
                            "--preview and --all-levels")
    output = output or input.with_suffix(".ome.tif")
    if not output.name.lower().endswith((".ome.tif", ".ome.tiff")):
        raise LigInputError(f"{output}: --pyramid writes OME-TIFF; name the output X.ome.tif")
    _check_output(output, force, input)
    try:
        sizes = write_ome_pyramid(input, output, progress=None if quiet else (
            lambda i, n: click.echo(f"level {i + 1}/{n}", err=True)))
    except OSError as e:
        raise LigInputError(_os_error(e, output)) from None
    if not quiet:
        click.echo(f"wrote {output} ({len(sizes)} levels, {sizes[0][0]}x{sizes[0][1]} down to "
                   f"{sizes[-1][0]}x{sizes[-1][1]})", err=True)


def _write_output(out, output, source: Path, force: bool, depth: int, quiet: bool = False, png_level=None):
    """Write a decoded/rendered array; default name: the source's with .png (.tif above 64 MP),
    never overwriting without --force."""
    from .io import write_image

    if output is None:
        big = out.shape[0] * out.shape[1] > 64_000_000
        output = source.with_suffix(".tif" if big else ".png")
    _check_output(output, force, source)
    try:
        write_image(output, out, depth, **({} if png_level is None else {"png_level": png_level}))
    except OSError as e:
        raise LigInputError(_os_error(e, output)) from None
    if not quiet:
        click.echo(f"wrote {output} ({out.shape[1]}x{out.shape[0]}, {out.shape[2]} channel(s), {depth}-bit)", err=True)


def _check_input(path: Path):
    """A one-line error now for an input that is missing, a directory or unreadable."""
    if not path.exists():
        raise LigInputError(f"{path}: no such file")
    if path.is_dir():
        raise LigInputError(f"{path} is a directory, not a file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise LigInputError(f"{path}: cannot read it: {e.strerror or e}") from None


def _check_output(output: Path, force: bool, input: Path):
    """Refuse now, before any work, what would fail or do harm at the end: the input, a directory,
    an existing file without --force, a missing directory, a directory no file can be created in."""
    import os

    from .io import check_output_dir

    if output.is_dir():
        raise LigInputError(f"OUTPUT {output} is a directory; name a file (in it or elsewhere)")
    if output.exists() and output.resolve() == Path(input).resolve():
        raise LigInputError(f"refusing to overwrite the input {input}")
    if output.exists() and not force:
        raise LigInputError(f"{output} exists; pass --force to overwrite it")
    check_output_dir(output)
    # Every output is written under a temporary name next to it and renamed: create one now.
    probe = output.with_name(f".{output.name}.probe-{os.getpid()}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise LigInputError(f"cannot write {output}: no file can be created in {output.absolute().parent} "
                            f"({e.strerror or e})") from None
    os.unlink(probe)


def _os_error(e: OSError, output: Path) -> str:
    """An OSError met writing ``output`` (or a temporary file next to it) as one line naming OUTPUT."""
    why = e.strerror or str(e)
    if e.filename is None or Path(e.filename).absolute().parent == output.absolute().parent:
        return f"cannot write {output}: {why} (in {output.absolute().parent})"
    return f"{e.filename}: {why}"


class _Interrupted(Exception):
    """Ctrl-C during a command, with what the user can do about it."""


def _interrupted(e: BaseException) -> bool:
    """True for Ctrl-C, also when numba wrapped the KeyboardInterrupt raised inside a kernel call
    into a SystemError ("returned a result with an exception set")."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _add_serve():
    from .serve.command import serve  # imports click only; the web stack loads when it runs

    cli.add_command(serve)


_add_serve()


def main(argv=None) -> int:
    """Entry point; returns the exit code. LigError, OSError and a bad option value become a
    one-line message, exit code 2 (other usage mistakes click's usage message, also 2); Ctrl-C a
    one-line message, exit code 130."""
    try:
        cli.main(args=argv, prog_name="ligcodec", standalone_mode=False)
    except _Interrupted as e:
        click.echo(f"ligcodec: {e}", err=True)
        return 130
    except click.exceptions.Abort:  # click turns a KeyboardInterrupt it sees into Abort
        click.echo("ligcodec: interrupted", err=True)
        return 130
    except click.BadParameter as e:
        if isinstance(e, click.MissingParameter):  # a usage mistake: click's usage message
            e.show()
            return e.exit_code
        click.echo(f"ligcodec: error: {e.format_message()}", err=True)  # a bad value: one line
        return 2
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except LigError as e:
        click.echo(f"ligcodec: error: {e}", err=True)
        return 2
    except OSError as e:  # a file that went away, a disk that filled up, ... (the checks cover the rest)
        where = f"{e.filename}: " if e.filename else ""
        click.echo(f"ligcodec: error: {where}{e.strerror or e}", err=True)
        return 2
    except BaseException as e:
        if not _interrupted(e):
            raise
        click.echo("ligcodec: interrupted", err=True)
        return 130
    return 0


def console() -> None:
    """The ``ligcodec`` command: :func:`main`, then exit without the interpreter's collection of
    every object at shutdown. A decode leaves ~120k objects (numba's type registries, mostly);
    collecting them at exit cost a third of a cold decode (bench/cold.py, BENCHMARKS.md).
    ``gc.freeze()`` moves them out of the collector's sight; atexit handlers and buffered output
    still run and flush. The short read commands also run without the cyclic collector, whose
    passes over those objects cost ~70 ms while the kernels load (memory is freed by reference
    counting; numba's registries are the cycles, and they live to the end anyway)."""
    import gc

    if sys.argv[1:2] in (["decode"], ["info"]):
        gc.disable()
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
