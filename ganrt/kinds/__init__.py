"""The model kinds: one module each, with its class and its ``Kind`` description (``ganrt.core.kind``).

Importing this package registers every kind; adding a kind is a module here and one name below.
"""

from ganrt.kinds import classifier, generator, translator, upscaler  # noqa: F401  (each registers its Kind)
