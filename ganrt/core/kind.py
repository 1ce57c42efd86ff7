"""What a model kind is: one description per kind, registered here by the module that defines the kind.

A ``Kind`` says what a file of that kind holds (its graph's inputs and outputs, the metadata fields it
uses and their checks), which class ``ganrt.load`` returns for it, how ``ganrt info`` and ``ganrt models``
show it, and how ``ganrt bench`` times it. Everything else in ganrt asks the registry, so adding a kind
is a module in ``ganrt/kinds/`` with its class and its ``Kind``, and one line in ``kinds/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS: dict[str, Kind] = {}


@dataclass(frozen=True)
class Kind:
    """One model kind. ``check`` and the display functions take the file's ``ModelInfo``."""

    name: str
    model_class: type  # what ``ganrt.load`` returns: ``Model`` subclass taking (session, info, *, source, path)
    inputs: str  # the graph's inputs, as a user reads them in an error or in docs
    outputs: str
    fields: tuple[str, ...]  # the ``ModelInfo`` fields this kind uses beyond the common ones
    check: Callable[[Any], str | None]  # why the metadata does not fit this kind, or None
    shape: Callable[[Any], str]  # the image column of ``ganrt models`` / ``info``: "32x32x1", "x4 RGB"
    rows: Callable[[Any], list[tuple[str, str]]]  # the kind's own rows of ``ganrt info``
    bench: Callable[[Any], tuple[Callable[[int], Any], float | None]]  # loaded model -> (fn(batch), FLOPs per item)
    flops_per: str = "image"  # what ``ModelInfo.flops`` counts: per "image", or per "input pixel"
    lanes: bool = False  # CPU lanes (a second single-threaded session) and CUDA graphs apply


def register(kind: Kind) -> Kind:
    """Add ``kind`` to ``KINDS`` (once per name); returns it, so a module can write ``GENERATOR = register(...)``."""
    if KINDS.get(kind.name, kind) is not kind:
        raise ValueError(f"model kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def article(word: str) -> str:
    """'an upscaler', 'a generator': for messages that name a kind."""
    return ("an " if word[:1] in "aeiou" else "a ") + word
