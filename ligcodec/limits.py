"""Every size limit of ligcodec, defined once. (The format's own limits on chunks and Gaussians
are the spec's constants, in :mod:`ligcodec.container`.)"""

#: Largest image side, in pixels: of a .lig file (spec section 2), of an input and of a render
#: (float64 means keep sub-pixel precision far beyond it).
MAX_SIDE = 1 << 24
#: Most levels a .lig file may have (spec section 2).
MAX_LEVELS = 8
#: Largest array of pixels made in one piece: one render or read (bigger outputs are read region
#: by region), a PNG/JPEG/WebP input decoded whole by Pillow (3 channels: 768 MB; Pillow's own
#: decompression-bomb guard would stop at ~179 MP) and an image array given to the research fit.
MAX_IN_MEMORY_PIXELS = 1 << 28
#: Largest image the encoder accepts (64 gigapixels): keeps the chunk index (24 bytes per tile and
#: level) and the encoder's per-tile bookkeeping in memory to tens of MB.
MAX_ENCODE_PIXELS = 1 << 36
