"""The torch side of ganrt: model definitions, data, training and ONNX export.

Needs the ``export`` extra (torch, onnx). The runtime package ``ganrt`` never imports this one.
"""
