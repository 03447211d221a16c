"""``ligcodec serve``: .lig files over HTTP (IIIF Image API 3.0, Deep Zoom, an OpenSeadragon viewer).

Needs the ``[serve]`` extra (starlette, uvicorn); nothing here imports them until used, and
``import ligcodec`` never imports this package.

    from ligcodec.serve import create_app
    app = create_app("images/")        # an ASGI app: uvicorn, hypercorn, or starlette's TestClient
"""

from __future__ import annotations


def create_app(root, **kwargs):
    """The ASGI app serving ``root`` (a .lig file or a folder); see :func:`ligcodec.serve.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(root, **kwargs)


__all__ = ["create_app"]
