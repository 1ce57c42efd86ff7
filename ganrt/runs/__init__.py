"""Writing a run to a folder: the output formats (one module each, listed in ``formats``), the manifest and
its journal, resume, replay, and sharding over Ray."""
