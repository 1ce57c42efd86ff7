"""Sample a ganrt generator served by Triton; ``ganrt export-triton`` copies this file into the repository.

The server runs only the network. Latents come from ``ganrt.core.latent.sample_latents(seed, indices)``
and labels default to ``index % classes``, both here on the client, exactly as ``ganrt generate``
draws them; the graph returns uint8 images (older files: ``float_to_uint8``). So image i from a server on the CPU
provider is image i of a local run with the same seed, label and truncation (byte for byte where
the server's onnxruntime build and CPU match the local ones).

    pip install ganrt 'tritonclient[http]'
    python client.py --url localhost:8000 -n 64 --seed 0 --out samples.png

Settings (model name, tensor names, batch limit, the model's ganrt metadata) come from
``client.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganrt.core.latent import sample_latents
from ganrt.core.schema import ModelInfo
from ganrt.io.images import float_to_uint8, save_grid

SETTINGS = "client.json"


@dataclass(frozen=True)
class Served:
    """What the client must know of the served model (``client.json``)."""

    model: str  # its name in Triton
    latent_input: str
    label_input: str | None  # None: unconditional
    output: str
    max_batch_size: int
    info: ModelInfo

    @classmethod
    def read(cls, folder: str | Path) -> Served:
        raw = json.loads((Path(folder) / SETTINGS).read_text())
        info = ModelInfo.from_json(json.dumps(raw.pop("info")), source=str(Path(folder) / SETTINGS))
        return cls(**raw, info=info)

    def to_json(self) -> str:
        fields = {k: getattr(self, k) for k in ("model", "latent_input", "label_input", "output", "max_batch_size")}
        return json.dumps({**fields, "info": json.loads(self.info.to_json())}, indent=2, sort_keys=True) + "\n"


def request(served: Served, indices: np.ndarray, *, seed: int, label: int | None = None,
            truncation: float | None = None) -> dict[str, np.ndarray]:
    """Triton inputs for images ``indices``: latent (N, nz) float32 and, if conditional, label (N, 1) int64."""
    info = served.info
    arrays = {served.latent_input: sample_latents(seed, indices, info.nz, prior=info.prior, truncation=truncation)}
    if served.label_input is not None:
        labels = indices % info.num_classes if label is None else np.full(len(indices), label)
        arrays[served.label_input] = labels.astype(np.int64)[:, None]  # (N, 1): config.pbtxt reshapes it to (N,)
    return arrays


def sample(url: str, served: Served, n: int, *, seed: int = 0, start: int = 0, label: int | None = None,
           truncation: float | None = None) -> np.ndarray:
    """Images start .. start+n-1 from the server at ``url``: (n, H, W, C) uint8."""
    import tritonclient.http as http  # pip install 'tritonclient[http]'

    client = http.InferenceServerClient(url=url)
    out = []
    for first in range(start, start + n, served.max_batch_size):
        indices = np.arange(first, min(first + served.max_batch_size, start + n))
        inputs = []
        for name, array in request(served, indices, seed=seed, label=label, truncation=truncation).items():
            tensor = http.InferInput(name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = client.infer(served.model, inputs, outputs=[http.InferRequestedOutput(served.output)])
        images = result.as_numpy(served.output)  # uint8 (B, H, W, C); older files: float (B, C, H, W)
        out.append(images if images.dtype == np.uint8 else float_to_uint8(images, served.info.value_range))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="localhost:8000", help="Triton's HTTP endpoint")
    parser.add_argument("-n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--label", type=int, default=None, help="one class for every image (default: index %% classes)")
    parser.add_argument("--truncation", type=float, default=None)
    parser.add_argument("--out", default="samples.png", help="a grid of the images")
    args = parser.parse_args()
    served = Served.read(Path(__file__).parent)
    images = sample(args.url, served, args.n, seed=args.seed, start=args.start, label=args.label, truncation=args.truncation)
    save_grid(args.out, images)
    print(f"{len(images)} images from {served.model} at {args.url} -> {args.out}")


if __name__ == "__main__":
    main()
