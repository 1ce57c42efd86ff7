"""Datasets out: --layout imagefolder, --format webdataset and --format parquet, read back by the real readers
(webdataset, Hugging Face datasets; torchvision where it imports), byte-identical across runs and through a kill.

Runs the bundled fashion-cgan / fashion-dcgan: no torch needed (CI's runtime-only stage runs these too).
"""

import json
import logging
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import ganrt
from ganrt.cli import cli
from ganrt.core.errors import MissingDependencyError, ParameterError
from ganrt.runs.image_folder import class_folders
from ganrt.runs.manifest import JOURNAL, MANIFEST, read_manifest
from ganrt.runs.replay import replay
from tests.signals import wait_for_lines

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the readers read local files only
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
BIN = Path(sys.executable).parent
FORMATS = ("webdataset", "parquet", "imagefolder")
NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.fixture(scope="module")
def cgan():
    return ganrt.load("fashion-cgan", threads=1)


@pytest.fixture(scope="module")
def dcgan():
    return ganrt.load("fashion-dcgan", threads=1)


def needs(fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="--format parquet needs the 'parquet' extra (pyarrow)")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under the folder (class folders included), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


LABELS = np.resize(np.array([3, 1, 4, 1, 5, 9, 2, 6, 0]), 23)


def run(gen, folder: Path, fmt: str, **kw):
    args = dict(n=23, seed=7, labels=LABELS, shard_size=5, batch_size=4) | kw
    return ganrt.generate_run(gen, folder, fmt=fmt, **args)


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_runs_give_the_same_bytes_and_replay_checks_every_image(cgan, tmp_path, fmt):
    needs(fmt)
    run(cgan, tmp_path / "a", fmt)
    run(cgan, tmp_path / "b", fmt, batch_size=7)  # another batch size: the same files
    a = snapshot(tmp_path / "a")
    assert a == snapshot(tmp_path / "b")
    assert len([k for k in a if k.endswith((".png", ".tar", ".parquet"))]) == (23 if fmt == "imagefolder" else 5)
    report = replay(tmp_path / "a")
    assert report.ok and len(report.images) == 23
    m = read_manifest(tmp_path / "a" / MANIFEST)
    assert m.header.format == fmt and m.header.classes == NAMES
    assert [e["label"] for e in m.entries] == LABELS.tolist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_finds_a_damaged_file(cgan, tmp_path, fmt):
    needs(fmt)
    run(cgan, tmp_path / "r", fmt)
    entry = read_manifest(tmp_path / "r" / MANIFEST).entries[-1]
    target = tmp_path / "r" / entry["file"]
    data = bytearray(target.read_bytes())
    at = data.rfind(b"IDAT") + 8  # inside the last image's compressed pixels (the shards hold the PNGs as they are)
    data[at : at + 12] = bytes(255 - v for v in data[at : at + 12])
    target.write_bytes(bytes(data))
    report = replay(tmp_path / "r")
    bad = [im for im in report.images if not im.ok]
    assert bad and all(im.reproduced for im in report.images)  # the model still makes them; the file is what changed
    assert entry["index"] in {im.index for im in bad}
    assert all(im.on_disk != "match" for im in bad)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_resumed_run_from_a_damaged_folder_ends_byte_identical(cgan, tmp_path, fmt):
    """The journal cut mid-line, a file of the middle removed, a temporary file left: resume remakes what is needed."""
    needs(fmt)
    ref = snapshot(run(cgan, tmp_path / "ref", fmt).folder)
    folder = run(cgan, tmp_path / "r", fmt).folder
    journal = (folder / MANIFEST).read_bytes()
    (folder / MANIFEST).unlink()
    (folder / JOURNAL).write_bytes(journal[: len(journal) * 2 // 3])
    m = read_manifest(folder / JOURNAL, repair=True)
    middle = folder / m.entries[len(m.entries) // 2]["file"]
    middle.unlink()
    (middle.parent / f".{middle.name}.12345.89abcdef.tmp").write_bytes(b"partial")
    res = run(cgan, folder, fmt, resume=True, batch_size=3)
    assert 0 < res.reused < 23 and res.generated == 23 - res.reused
    assert snapshot(folder) == ref


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_killed_run_resumed_is_byte_identical_to_an_uninterrupted_one(cgan, tmp_path, fmt):
    needs(fmt)
    opts = ["--layout", "imagefolder"] if fmt == "imagefolder" else ["--format", fmt]
    args = [str(BIN / "ganrt"), "generate", "-n", "3000", "--seed", "3", "--batch-size", "4", "--shard-size", "40",
            "--threads", "1", *opts, "--out", str(tmp_path / "run"), "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_lines(tmp_path / "run" / JOURNAL, 85, proc)  # two shards recorded
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (tmp_path / "run" / MANIFEST).exists()  # cut short
    out = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    kept = int(out.stdout.split("resumed: ")[1].split()[0])
    assert 0 < kept < 3000
    ref = ganrt.generate_run(cgan, tmp_path / "ref", n=3000, seed=3, fmt=fmt, shard_size=40, batch_size=64)
    assert snapshot(tmp_path / "run") == snapshot(ref.folder)


def expected(cgan, indices, labels) -> np.ndarray:
    return cgan.images_at(np.asarray(indices), seed=7, labels=np.asarray(labels))


def test_webdataset_reads_the_shards_back_with_the_same_pixels_labels_and_provenance(cgan, tmp_path):
    wds = pytest.importorskip("webdataset", reason="the webdataset reader is in the 'dev' extra")
    folder = run(cgan, tmp_path / "w", "webdataset").folder
    shards = sorted(str(p) for p in folder.glob("shard-*.tar"))
    assert [Path(s).name for s in shards] == [f"shard-{k:06d}.tar" for k in range(5)]
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode("l8").to_tuple("__key__", "png", "cls", "json"))
    assert [k for k, *_ in samples] == [f"{i:06d}" for i in range(23)]
    pixels = np.stack([np.asarray(png) for _, png, _, _ in samples])[..., None]
    assert np.array_equal(pixels, expected(cgan, range(23), LABELS))
    assert [cls for _, _, cls, _ in samples] == LABELS.tolist()
    meta = [j for *_, j in samples]
    assert [j["index"] for j in meta] == list(range(23)) and {j["seed"] for j in meta} == {7}
    assert {j["model_sha256"] for j in meta} == {cgan.sha256}
    assert [j["class"] for j in meta] == [NAMES[y] for y in LABELS]
    with tarfile.open(shards[0]) as tar:  # fixed owners, modes and times, names in order
        infos = tar.getmembers()
    assert [i.name for i in infos] == sorted(i.name for i in infos)
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}


def test_hf_datasets_loads_the_parquet_shards_with_images_and_class_names(cgan, tmp_path):
    pytest.importorskip("pyarrow", reason="--format parquet needs the 'parquet' extra (pyarrow)")
    datasets = pytest.importorskip("datasets", reason="the Hugging Face datasets reader is in the 'dev' extra")
    folder = run(cgan, tmp_path / "p", "parquet").folder
    files = sorted(str(p) for p in folder.glob("shard-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["label"].names == list(NAMES)
    assert ds["index"] == list(range(23)) and set(ds["seed"]) == {7} and ds["label"] == LABELS.tolist()
    pixels = np.stack([np.asarray(im) for im in ds["image"]])[..., None]
    assert np.array_equal(pixels, expected(cgan, range(23), LABELS))
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "fashion-cgan" in card and cgan.sha256 in card
    # the card's YAML makes the folder itself loadable, with the same features
    whole = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf2"))
    assert whole.features == ds.features and whole["index"] == ds["index"]


def image_folder_expectation(cgan, folder: Path):
    """(relative path -> class name) as ganrt promised: class folder/image index; pixels by index."""
    return {f"{class_folders(NAMES)[y]}/{i:06d}.png": NAMES[y] for i, y in enumerate(LABELS)}


def test_hf_imagefolder_reads_the_class_folders(cgan, tmp_path):
    datasets = pytest.importorskip("datasets", reason="the Hugging Face datasets reader is in the 'dev' extra")
    folder = run(cgan, tmp_path / "i", "imagefolder").folder
    ds = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train", cache_dir=str(tmp_path / "hf"))
    names = ds.features["label"].names  # the builder numbers classes by sorted folder name
    assert names == sorted({class_folders(NAMES)[y] for y in LABELS})
    got = sorted((ds.features["label"].int2str(row["label"]), np.asarray(row["image"]).tobytes()) for row in ds)
    want = sorted((class_folders(NAMES)[y], im.tobytes()) for y, im in zip(LABELS, expected(cgan, range(23), LABELS)))
    assert got == want


def test_the_class_folders_hold_each_image_under_its_class(cgan, tmp_path):
    """Without any reader's code: every PNG is OUT/<its class's folder>/<index>.png and holds that image."""
    folder = run(cgan, tmp_path / "i", "imagefolder").folder
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    promised = image_folder_expectation(cgan, folder)
    assert files == sorted(promised)
    want = expected(cgan, range(23), LABELS)
    for rel in files:
        index = int(Path(rel).stem)
        assert np.array_equal(np.asarray(Image.open(folder / rel))[..., None], want[index])
    assert {p.name for p in folder.iterdir() if p.is_dir()} == {class_folders(NAMES)[y] for y in LABELS}


def test_torchvision_imagefolder_reads_the_class_folders(cgan, tmp_path):
    try:
        from torchvision.datasets import ImageFolder
    except Exception as exc:  # PyPI's torchvision 0.28.0 is a CUDA build: RuntimeError "operator torchvision::nms does not exist"
        pytest.skip(f"torchvision does not import here ({type(exc).__name__}: {str(exc)[:80]}); the CPU wheel is not on PyPI")
    folder = run(cgan, tmp_path / "i", "imagefolder").folder
    ds = ImageFolder(str(folder))
    got = sorted((ds.classes[y], np.asarray(im.convert("L")).tobytes()) for im, y in ds)
    want = sorted((class_folders(NAMES)[y], im.tobytes()) for y, im in zip(LABELS, expected(cgan, range(23), LABELS)))
    assert got == want


def test_class_names_become_safe_distinct_folders_inside_out(tmp_path):
    names = ("T-shirt/top", "..", "", " .hidden", "A/b", "a_b", "x" * 300, "../../etc", "C:\\win", "Ünïcode", "ok")
    folders = class_folders(names)
    assert len(set(f.lower() for f in folders)) == len(names)
    for f in folders:
        assert f and "/" not in f and "\\" not in f and not f.startswith(".") and not f.startswith(" ") and len(f) <= 100
        assert (tmp_path / f).resolve().parent == tmp_path.resolve()
    assert folders[0] == "T-shirt_top" and folders[-1] == "ok" and folders[9] == "Ünïcode"
    assert folders[4] != folders[5]  # "A/b" and "a_b" would collide: each keeps its own folder


def test_unconditional_models_write_shards_without_labels_and_no_class_folders(dcgan, tmp_path):
    folder = ganrt.generate_run(dcgan, tmp_path / "w", n=6, seed=1, fmt="webdataset", shard_size=4).folder
    with tarfile.open(folder / "shard-000000.tar") as tar:
        names = tar.getnames()
        record = json.loads(tar.extractfile("000000.json").read())
    assert names == [f"{i:06d}.{ext}" for i in range(4) for ext in ("json", "png")]
    assert record["label"] is None and "class" not in record
    assert "classes" not in (folder / MANIFEST).read_text().splitlines()[0]
    assert replay(folder).ok
    with pytest.raises(ParameterError, match="unconditional"):
        ganrt.generate_run(dcgan, tmp_path / "i", n=6, fmt="imagefolder")
    assert not (tmp_path / "i").exists()
    pytest.importorskip("pyarrow", reason="--format parquet needs the 'parquet' extra (pyarrow)")
    datasets = pytest.importorskip("datasets", reason="the Hugging Face datasets reader is in the 'dev' extra")
    folder = ganrt.generate_run(dcgan, tmp_path / "p", n=6, seed=1, fmt="parquet", shard_size=4).folder
    ds = datasets.load_dataset("parquet", data_files=str(folder / "shard-*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert list(ds.features) == ["image", "index", "seed"]
    assert np.array_equal(np.stack([np.asarray(im) for im in ds["image"]])[..., None],
                          dcgan.images_at(np.arange(6), seed=1))


def test_png_runs_keep_their_header_bytes(cgan, tmp_path):
    """Formats without classes write the header they always did: earlier runs resume and compare as before."""
    folder = run(cgan, tmp_path / "p", "png").folder
    line = json.loads((folder / MANIFEST).read_text().splitlines()[0])
    assert "classes" not in line["run"]


def test_overwrite_removes_the_class_folders_and_a_new_run_refuses_them(cgan, tmp_path):
    folder = run(cgan, tmp_path / "i", "imagefolder").folder
    (folder / "Coat" / "notes.txt").write_text("mine")  # not the run's: stays, and so does its folder
    with pytest.raises(ganrt.OutputError, match="earlier run"):
        run(cgan, folder, "png")
    run(cgan, folder, "png", overwrite=True)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["Coat"]
    assert [p.name for p in (folder / "Coat").iterdir()] == ["notes.txt"]
    assert replay(folder).ok


def test_the_cli_writes_each_format_and_refuses_a_layout_with_another_format(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["generate", "-n", "12", "--layout", "imagefolder", "--out", str(tmp_path / "i"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "i" / "T-shirt_top" / "000000.png").is_file()
    res = runner.invoke(cli, ["generate", "-n", "12", "--format", "webdataset", "--shard-size", "5", "--out",
                              str(tmp_path / "w"), "--no-progress"])
    assert res.exit_code == 0 and sorted(p.name for p in (tmp_path / "w").glob("*.tar")) == [
        "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    out = subprocess.run([str(BIN / "ganrt"), "generate", "-n", "4", "--format", "npz", "--layout", "imagefolder", "--out",
                          str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and out.stderr.count("\n") == 1 and "layout of PNG files" in out.stderr
    assert not (tmp_path / "x").exists()
    res = runner.invoke(cli, ["generate", "-n", "4", "--format", "imagefolder", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and not (tmp_path / "x").exists()  # a layout, not a --format


def test_parquet_without_pyarrow_is_one_line_naming_the_extra(cgan, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"ganrt\[parquet\]"):
        run(cgan, tmp_path / "p", "parquet")
    assert not (tmp_path / "p").exists()  # refused before the folder was touched
    code = ("import sys; sys.modules['pyarrow'] = None; sys.argv = ['ganrt', 'generate', '-n', '4', '--format', 'parquet', "
            f"'--out', {str(tmp_path / 'p')!r}]; from ganrt.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and out.stderr.count("\n") == 1 and "ganrt[parquet]" in out.stderr, out.stderr
    assert not (tmp_path / "p").exists()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the cluster tests need the 'ray' extra")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20, logging_level=logging.ERROR,
             log_to_driver=False)
    yield
    ray.shutdown()


def test_each_format_on_ray_is_byte_identical_to_one_process(ray_cluster, cgan, tmp_path):
    from ganrt.runs.cluster import ClusterConfig, generate_on_ray

    for fmt in FORMATS:
        if fmt == "parquet" and not _has("pyarrow"):
            continue
        one = run(cgan, tmp_path / f"one-{fmt}", fmt).folder
        res = generate_on_ray(cgan, tmp_path / f"ray-{fmt}", n=23, seed=7, labels=LABELS, shard_size=5, batch_size=4,
                              fmt=fmt, cluster=ClusterConfig(workers=2, task_images=6))
        assert res.generated == 23
        assert snapshot(res.folder) == snapshot(one), fmt


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_a_class_folder_that_is_a_symbolic_link_is_refused(cgan, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "Trouser").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ganrt.OutputError, match="symbolic link"):
        run(cgan, tmp_path / "r", "imagefolder")
    assert list(outside.iterdir()) == []
