__version__ = "0.2.0"  # 0.2.0: PNG bytes changed (Z_RLE); a run header records it, so --resume never mixes encoders
