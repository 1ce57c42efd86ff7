"""Bring your own model: four models from elsewhere (tests/third_party.py, as their repositories define
them) become ganrt files from the torch module, from a weights file and from a plain ONNX file, and
ganrt's images equal torch's after the documented conversion."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
import third_party as tp
import torch
from torch import nn

import ganrt
from ganrt.evaluate.explore import class_interpolation, supports_class_mixing
from ganrt_export.adopt import AdoptConfig, AdoptError, adopt_file
from ganrt_export.byom import ModuleError, export_generator, export_upscaler

BIN = Path(sys.executable).parent
N = 8  # images compared per model


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with texture: what an upscaler meets, not white noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    img = np.stack([128 + 100 * np.sin(xx / 7 + c) * np.cos(yy / 9 - c) for c in range(3)], -1) + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def ganrt_inputs(n: int, nz: int = 100) -> np.ndarray:
    """The latents ganrt draws for images 0..n-1 of seed 0, in the third-party layout (n, nz, 1, 1)."""
    from ganrt.core.latent import sample_latents

    return sample_latents(0, np.arange(n), nz).reshape(n, nz, 1, 1)


@pytest.fixture(scope="module")
def dcgan_file(tmp_path_factory):
    module, s = tp.tiny_dcgan()
    out = tmp_path_factory.mktemp("byom") / "dcgan.onnx"
    report = export_generator(module, out, name="dcgan-examples")
    return module, out, report


@pytest.fixture(scope="module")
def cdcgan_file(tmp_path_factory):
    module, s = tp.tiny_cdcgan()
    out = tmp_path_factory.mktemp("byom") / "cdcgan.onnx"
    report = export_generator(module, out, name="cdcgan", label="onehot", num_classes=10,
                              class_names=tuple("0123456789"))
    return module, out, report


def test_pytorch_examples_dcgan_from_the_module(dcgan_file):
    module, path, report = dcgan_file
    gen = ganrt.load(path)
    assert gen.nz == 100 and gen.image_shape == tp.found(module)["image_shape"] and not gen.info.conditional
    assert gen.lanes > 1 or gen.lanes == 1 and ganrt.load(path, lanes=2).lanes == 2  # a uint8 file: lanes apply
    assert gen.output_type == "uint8"
    expected = tp.generator_reference(module, [ganrt_inputs(N)])
    got = gen.sample(N, seed=0)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert report["torch_parity_max_abs_uint8"] <= 1 and report["training"] if "training" in report else True
    np.testing.assert_array_equal(ganrt.load(path, lanes=2).sample(64, seed=3), ganrt.load(path, lanes=1).sample(64, seed=3))


def test_one_hot_cgan_from_the_module_with_class_interpolation(cdcgan_file):
    module, path, _ = cdcgan_file
    gen = ganrt.load(path)
    assert gen.num_classes == 10 and gen.image_shape == (32, 32, 1) and supports_class_mixing(gen)
    labels = np.arange(N) % 10
    expected = tp.generator_reference(module, [ganrt_inputs(N), tp.one_hot(labels, 10)])
    got = gen.sample(N, seed=0, labels=labels)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    walk = class_interpolation(gen, 2, 7, 5, index=3)
    np.testing.assert_array_equal(walk[0], gen.images_at([3], labels=[2])[0])  # alpha 0: class 2 exactly
    assert np.abs(walk[-1].astype(int) - gen.images_at([3], labels=[7])[0].astype(int)).max() <= 1  # alpha 1: class 7
    assert np.abs(walk[2].astype(int) - walk[0].astype(int)).max() > 0  # in between: neither


def test_espcn_y_channel_from_the_module(tmp_path):
    module, s = tp.tiny_espcn()
    out = tmp_path / "espcn.onnx"
    report = export_upscaler(module, out, name="espcn", color="y")
    up = ganrt.load(out)
    assert up.scale == 3 and up.receptive_radius >= tp.found(module)["radius"]
    img = photo(40, 52)
    got = up.upscale(img)
    # super_resolve.py's picture (Y through the net, truncated to uint8; Cb/Cr by Pillow's BICUBIC) against
    # ganrt's (Y rounded; Cb/Cr by a cubic resize in the graph), compared in YCbCr where neither picture
    # clipped RGB (a clipped pixel no longer holds its Y): Y within 3/255, chroma within 2/255
    from PIL import Image

    script = tp.espcn_reference(module, img)
    inside = ((got > 0) & (got < 255)).all(-1) & ((script > 0) & (script < 255)).all(-1)
    ours, theirs = (np.asarray(Image.fromarray(a).convert("YCbCr")).astype(int) for a in (got, script))
    diff = np.abs(ours - theirs)[inside]  # (pixels, 3)
    assert inside.mean() > 0.3 and diff[:, 0].max() <= 3 and diff[:, 0].mean() < 2 and diff[:, 1:].max() <= 2
    assert report["torch_parity_max_abs"] < 1e-4
    whole, tiled = up.upscale(img, tile=4096), up.upscale(img, tile=32)  # overlap 16 >= 2 x radius: exact
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_real_esrgan_compact_from_a_dataparallel_state_dict_through_the_cli(tmp_path):
    module, s = tp.tiny_srvgg()
    weights = tmp_path / "srvgg.pth"
    torch.save(nn.DataParallel(module).state_dict(), weights)  # keys start with "module."
    out = tmp_path / "srvgg.onnx"
    kwargs = {"num_feat": 8, "num_conv": 2, "upscale": 4, "act_type": "prelu"}
    run = subprocess.run([str(BIN / "ganrt-export"), "torch", "third_party:SRVGGNetCompact", str(out), "--weights", str(weights),
                          "--kwargs", json.dumps(kwargs), "--path", str(Path(__file__).parent), "--kind", "upscaler",
                          "--name", "srvgg-tiny"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    up = ganrt.load(out)
    assert up.scale == 4 and up.receptive_radius == tp.found(module)["radius"]
    imgs = np.stack([photo(24, 30, seed) for seed in range(2)])
    expected = tp.upscaler_reference(module, imgs)
    got = up.upscale_many(imgs)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    img = photo(70, 90)
    assert np.abs(up.upscale(img, tile=4096).astype(int) - up.upscale(img, tile=24).astype(int)).max() <= 1


@pytest.mark.parametrize("dynamo", [False, True])
def test_plain_onnx_files_are_adopted_without_torch_in_the_adopt_step(tmp_path, dynamo):
    """The four as a user exports them by hand; adopt (onnx + onnxruntime) wraps them; same images as torch."""
    dcgan, _ = tp.tiny_dcgan()
    src = tp.export_plain(dcgan, [torch.from_numpy(ganrt_inputs(2))], tmp_path / "dcgan-plain.onnx", input_names=["noise"],
                          dynamo=dynamo)
    adopt_file(src, tmp_path / "dcgan.onnx", AdoptConfig(kind="generator", name="dcgan"))
    got = ganrt.load(tmp_path / "dcgan.onnx").sample(N, seed=0)
    assert np.abs(got.astype(int) - tp.generator_reference(dcgan, [ganrt_inputs(N)]).astype(int)).max() <= 1

    cdcgan, _ = tp.tiny_cdcgan()
    src = tp.export_plain(cdcgan, [torch.from_numpy(ganrt_inputs(2)), torch.from_numpy(tp.one_hot([0, 1], 10))],
                          tmp_path / "cdcgan-plain.onnx", input_names=["z", "y"], dynamo=dynamo)
    adopt_file(src, tmp_path / "cdcgan.onnx", AdoptConfig(kind="generator", name="cdcgan"))  # one-hot found from the graph
    gen = ganrt.load(tmp_path / "cdcgan.onnx")
    labels = np.arange(N) % 10
    expected = tp.generator_reference(cdcgan, [ganrt_inputs(N), tp.one_hot(labels, 10)])
    assert gen.num_classes == 10 and np.abs(gen.sample(N, labels=labels).astype(int) - expected.astype(int)).max() <= 1

    srvgg, _ = tp.tiny_srvgg()
    src = tp.export_plain(srvgg, [torch.rand(2, 3, 16, 16)], tmp_path / "srvgg-plain.onnx", input_names=["x"], dynamo=dynamo,
                          dynamic_hw=True)
    adopt_file(src, tmp_path / "srvgg.onnx", AdoptConfig(kind="upscaler", name="srvgg"))
    up = ganrt.load(tmp_path / "srvgg.onnx")
    imgs = photo(20, 28)[None]
    assert np.abs(up.upscale_many(imgs).astype(int) - tp.upscaler_reference(srvgg, imgs).astype(int)).max() <= 1

    espcn, _ = tp.tiny_espcn()
    src = tp.export_plain(espcn, [torch.rand(2, 1, 16, 16)], tmp_path / "espcn-plain.onnx", input_names=["y"], dynamo=dynamo,
                          dynamic_hw=True)
    adopt_file(src, tmp_path / "espcn.onnx", AdoptConfig(kind="upscaler", name="espcn", color="y"))
    assert ganrt.load(tmp_path / "espcn.onnx").scale == 3


def test_a_fixed_batch_file_is_made_dynamic(tmp_path):
    dcgan, _ = tp.tiny_dcgan()
    src = tp.export_plain(dcgan, [torch.from_numpy(ganrt_inputs(1))], tmp_path / "fixed.onnx", input_names=["z"],
                          fixed_batch=True, dynamo=False)
    report = adopt_file(src, tmp_path / "dyn.onnx", AdoptConfig(kind="generator", name="dcgan"))
    assert report["made_batch_dynamic"]
    assert ganrt.load(tmp_path / "dyn.onnx").sample(5).shape == (5, 64, 64, 3)


def test_adopted_files_run_everything_a_bundled_one_does(dcgan_file, tmp_path):
    """A run folder, its replay, a Triton repository and bench: nothing is special about an adopted file."""
    from ganrt.runs.replay import replay
    from ganrt.tools.bench import bench_model
    from ganrt.tools.triton import export_triton

    _, path, _ = dcgan_file
    gen = ganrt.load(path)
    ganrt.generate_run(gen, tmp_path / "run", n=10, batch_size=4)
    assert replay(tmp_path / "run").ok
    assert (export_triton(gen, tmp_path / "triton") / "config.pbtxt").is_file()
    assert bench_model(gen, batch_sizes=(2,), rounds=1, min_seconds=0.05)[0].images_per_s > 0


class _NaN(nn.Module):
    def forward(self, z):
        return torch.full((z.shape[0], 1, 8, 8), float("nan")) + z.mean()


class _Noisy(nn.Module):
    def forward(self, z):
        return torch.tanh(z.reshape(-1, 1, 4, 4) + torch.rand(z.shape[0], 1, 4, 4))


class _TooBright(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 64)

    def forward(self, z):
        return 3 * torch.tanh(self.fc(z) * 10).reshape(-1, 1, 8, 8)


class _Unexportable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 64)

    def forward(self, z):
        return torch.tanh(torch.special.i0e(self.fc(z))).reshape(-1, 1, 8, 8)


@pytest.mark.parametrize("module, kw, match", [
    (_NaN().eval(), {"nz": 16}, "NaN"),
    (_Noisy().eval(), {"nz": 16}, "not deterministic"),
    (_TooBright().eval(), {}, r"outside the declared value range \[-1, 1\]"),
    (_Unexportable().eval(), {}, "cannot export the module"),
    (tp.tiny_dcgan()[0], {"nz": 128}, "--nz 128 contradicts the module: its first layer"),
    (tp.tiny_dcgan()[0].train(), {}, "training mode"),
])
def test_bad_modules_get_one_line_and_nothing_is_written(tmp_path, module, kw, match):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModuleError if "nz" in kw and kw["nz"] == 128 or "training" in match else AdoptError, match=match) as err:
        export_generator(module, out, name="bad", **kw)
    assert "\n" not in str(err.value) and not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_refuses_pickles_bad_imports_and_wrong_keys_in_one_line(tmp_path):
    module, _ = tp.tiny_dcgan()
    whole, keys = tmp_path / "whole.pth", tmp_path / "esrgan.pth"
    torch.save(module, whole)
    torch.save({"params_ema": tp.tiny_srvgg()[0].state_dict()}, keys)  # Real-ESRGAN's own layout, wrong model
    here = str(Path(__file__).parent)
    cases = [
        (["third_party:Generator", "--weights", str(whole), "--kwargs", '{"ngpu": 1, "ngf": 8}'],
         "pickled object, not only weights; loading it runs code"),
        (["no_such_module:Generator"], "cannot import no_such_module: ModuleNotFoundError"),
        (["third_party:Nope"], "third_party has no attribute 'Nope'"),
        (["third_party:Generator", "--weights", str(keys), "--kwargs", '{"ngpu": 1}'],
         "does not fit Generator: missing main.0.weight"),
        (["third_party:Generator", "--kwargs", "[1]"], "must be a JSON object"),
    ]
    for args, match in cases:
        run = subprocess.run([str(BIN / "ganrt-export"), "torch", *args, str(tmp_path / "x.onnx"), "--kind", "generator",
                              "--name", "x", "--path", here], capture_output=True, text=True, timeout=300)
        assert run.returncode != 0 and match in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)
        assert not (tmp_path / "x.onnx").exists()
    ok = subprocess.run([str(BIN / "ganrt-export"), "torch", "third_party:Generator", str(tmp_path / "x.onnx"), "--weights",
                         str(whole), "--trust-pickle", "--kwargs", '{"ngpu": 1, "ngf": 8}', "--kind", "generator", "--name", "x",
                         "--path", here], capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr
    # a whole pickled module needs no MODULE:ATTR; its classes are imported from --path
    whole_only = subprocess.run([str(BIN / "ganrt-export"), "torch", str(tmp_path / "y.onnx"), "--weights", str(whole),
                                 "--trust-pickle", "--kind", "generator", "--path", here], capture_output=True, text=True,
                                timeout=600)
    assert whole_only.returncode == 0 and (tmp_path / "y.onnx").is_file(), whole_only.stderr


def test_adopt_refuses_contradictions_and_whole_image_networks(tmp_path):
    from onnx import TensorProto, helper

    dcgan, _ = tp.tiny_dcgan()
    src = tp.export_plain(dcgan, [torch.from_numpy(ganrt_inputs(2))], tmp_path / "g.onnx", input_names=["z"], dynamo=False)
    for config, match in [(AdoptConfig(kind="generator", name="g", nz=128), "--nz 128 contradicts the graph"),
                          (AdoptConfig(kind="generator", name="g", label="onehot"), "--label onehot contradicts the graph"),
                          (AdoptConfig(kind="upscaler", name="g"),
                           "--color rgb means 3 input channel\\(s\\), but the graph takes z")]:
        with pytest.raises(AdoptError, match=match):
            adopt_file(src, tmp_path / "out.onnx", config)
        assert not (tmp_path / "out.onnx").exists()
    # x -> x * 2 - mean(x) + upsample: the global mean makes every output pixel depend on every input pixel
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Resize", ["d", "", "s"], ["y"], mode="nearest")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H2", "W2"])],
                              [helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    whole = tmp_path / "whole.onnx"
    whole.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(AdoptError, match="sees the whole image"):
        adopt_file(whole, tmp_path / "out.onnx", AdoptConfig(kind="upscaler", name="u"))
    assert not (tmp_path / "out.onnx").exists()


class EmbeddingCGAN(nn.Module):
    """eriklindernoren/PyTorch-GAN implementations/cgan/cgan.py's Generator (an int64 label through
    nn.Embedding, concatenated with the noise; an MLP; img.view to (N, 1, 28, 28)), with its opt.* settings
    as arguments: latent_dim 100, n_classes 10, img_shape (1, 28, 28)."""

    def __init__(self, latent_dim=100, n_classes=10, img_shape=(1, 28, 28)):
        super().__init__()
        self.img_shape = img_shape
        self.label_emb = nn.Embedding(n_classes, n_classes)

        def block(in_feat, out_feat, normalize=True):
            layers = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *block(latent_dim + n_classes, 128, normalize=False), *block(128, 256), *block(256, 512), *block(512, 1024),
            nn.Linear(1024, int(np.prod(img_shape))), nn.Tanh())

    def forward(self, noise, labels):
        gen_input = torch.cat((self.label_emb(labels), noise), -1)
        img = self.model(gen_input)
        return img.view(img.size(0), *self.img_shape)


def test_an_index_label_through_an_embedding_gets_class_interpolation(tmp_path):
    torch.manual_seed(0)
    module = EmbeddingCGAN().eval()
    with pytest.raises(ModuleError, match="give --latent-shape"):  # its first layer takes nz + classes: nz must be given
        export_generator(module, tmp_path / "x.onnx", name="cgan", num_classes=10)
    export_generator(module, tmp_path / "cgan.onnx", name="cgan", nz=100, num_classes=10)
    gen = ganrt.load(tmp_path / "cgan.onnx")
    assert gen.image_shape == (28, 28, 1) and gen.num_classes == 10 and supports_class_mixing(gen)
    labels = np.arange(N) % 10
    from ganrt.core.latent import sample_latents

    expected = tp.generator_reference(module, [sample_latents(0, np.arange(N), 100), labels.astype(np.int64)])
    assert np.abs(gen.sample(N, labels=labels).astype(int) - expected.astype(int)).max() <= 1
    walk = class_interpolation(gen, 1, 8, 3, index=2)
    np.testing.assert_array_equal(walk[0], gen.images_at([2], labels=[1])[0])
