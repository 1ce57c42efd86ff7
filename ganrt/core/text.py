"""Text from a model file, manifest or PNG made safe for a terminal: the one helper every printer uses.

A model's description, name, class names or tensor names are anyone's strings. Printed as they are,
an ESC sequence can rewrite the screen, set the window title or hide the lines before it, and a
right-to-left override can make ``evil.onnx`` read as something else. ``printable`` shows every such
character as its escape (``\\x1b``, ``\\u202e``); ordinary text, accents and CJK included, is unchanged.
"""

from __future__ import annotations

import unicodedata

# control (C0, C1, DEL), format (bidi overrides, zero-width), surrogates, private use, unassigned; line/paragraph separators
_UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def printable(text: object) -> str:
    """``str(text)`` with every control, format or otherwise invisible character written as its Python escape."""
    s = str(text)
    if s.isprintable():  # the common case, checked in C
        return s
    return "".join(c if unicodedata.category(c) not in _UNSAFE else _escape(c) for c in s)


def _escape(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"
