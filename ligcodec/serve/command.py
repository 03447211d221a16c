"""The ``ligcodec serve`` command (a click command; ``ligcodec/cli.py`` registers it).

Only click is imported here: starlette and uvicorn (the ``[serve]`` extra) are imported when the
command runs, so ``ligcodec --help`` stays quick and works without them.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from pathlib import Path

import click

_MISSING = ("`ligcodec serve` needs the web extras: pip install 'ligcodec[serve]' "
            "(starlette and uvicorn)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default is this machine only; 0.0.0.0 serves the network "
                   "(no authentication: anyone who can reach it reads every file under PATH).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: any free port; the URL is printed).")
@click.option("--threads", type=click.IntRange(min=1), help="Renders at a time (default: one per core).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=1 << 24, show_default=True,
              help="Largest output of one request, in pixels (larger requests get 400).")
@click.option("--cache-tiles", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Decoded chunks (a tile's Gaussians of one level) kept per file; a chunk of 1000 "
                   "Gaussians takes 52 KB: 4096 chunks of a ~1.2 bpp file take ~200 MB.")
@click.option("--max-age", type=click.IntRange(min=0), default=3600, show_default=True,
              help="Cache-Control max-age of images, in seconds (then clients revalidate with the ETag).")
@click.option("--quiet", "-q", is_flag=True, help="No log line per request.")
def serve(path, host, port, threads, max_pixels, cache_tiles, max_age, quiet):
    """Serve PATH (a .lig file, or a folder searched for .lig files) over HTTP.

    \b
    http://HOST:PORT/                       the files, each with a viewer (OpenSeadragon)
    /iiif/3/NAME/info.json                  IIIF Image API 3.0 (level 1 + pct, !w,h, ^, 90s)
    /iiif/3/NAME/0,0,512,512/256,/0/default.png
    /dzi/NAME.dzi                           Deep Zoom
    NAME is the file's name without .lig. Ctrl-C stops.
    """
    try:
        import uvicorn

        from .app import create_app
        from .library import DuplicateNames
    except ImportError as e:
        raise click.ClickException(f"{_MISSING} ({e})") from None
    from . import pages

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    logging.getLogger("ligcodec.serve").setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        app = create_app(path, threads=threads, max_pixels=max_pixels, cache_tiles=cache_tiles, max_age=max_age)
    except (DuplicateNames, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    names = app.state.library.names()
    if not names:
        raise click.ClickException(f"no .lig files in {path}")
    try:  # load the renderer's compiled kernels now rather than in the first viewer's request
        app.state.library.get(names[0]).image().read(1.0, (0, 0, 1, 1))
    except Exception as e:  # noqa: BLE001 - a bad file is reported by its requests, not here
        logging.getLogger("ligcodec.serve").warning("%s: %s", names[0], e)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections made from now on wait for the server instead of being refused
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving {len(names)} file(s) from {path} at http://{shown}:{bound}/ (Ctrl-C stops)", err=True)
    if not _is_loopback(host):
        click.echo(f"warning: listening on {host}: anyone who can reach this address can read these files", err=True)
    if not pages.osd_installed():
        click.echo(f"note: the viewer needs OpenSeadragon: {pages.INSTALL}", err=True)
    sys.stderr.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def main(argv=None):
    """``python -m ligcodec.serve``."""
    return serve.main(args=argv, prog_name="ligcodec serve")
