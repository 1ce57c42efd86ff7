"""Image I/O: codecs (PNG, npz), atomic writes, checked reads of user images, grids and GIFs."""
