"""``python -m ligcodec.serve PATH [--host 127.0.0.1] [--port 8000]``: same as ``ligcodec serve``."""

from .command import main

if __name__ == "__main__":
    main()
