import pytest

pytest.importorskip("torch", reason="the torch side needs the 'export' extra")
import torch

from ganrt_export.config import GANConfig, TrainConfig
from ganrt_export.data import DataError, load_dataset, read_idx
from ganrt_export.train import CHECKPOINT_NAME, CheckpointError, load_checkpoint, train_gan

TINY = GANConfig(ngf=4, ndf=4, num_classes=10, embed_dim=4)


def _tcfg(**kw):
    return TrainConfig(**{"dataset": "digits", "epochs": 2, "batch_size": 32, "limit": 128, **kw})


def _states_equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight = load_checkpoint(train_gan(TINY, _tcfg(), tmp_path / "a", progress=False))
    train_gan(TINY, _tcfg(epochs=1), tmp_path / "b", progress=False)
    resumed = load_checkpoint(train_gan(TINY, _tcfg(epochs=2), tmp_path / "b", resume=True, progress=False))
    assert straight.epoch == resumed.epoch == 2
    assert _states_equal(straight.state["G"], resumed.state["G"])
    assert _states_equal(straight.state["D"], resumed.state["D"])
    assert [h["loss_d"] for h in straight.history] == [h["loss_d"] for h in resumed.history]
    assert (tmp_path / "a" / "samples-epoch001.png").is_file() and (tmp_path / "a" / "samples-epoch002.png").is_file()


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = load_checkpoint(train_gan(TINY, _tcfg(epochs=1), tmp_path / "a", progress=False))
    b = load_checkpoint(train_gan(TINY, _tcfg(epochs=1), tmp_path / "b", progress=False))
    c = load_checkpoint(train_gan(TINY, _tcfg(epochs=1, seed=1), tmp_path / "c", progress=False))
    assert _states_equal(a.state["G"], b.state["G"])
    assert not _states_equal(a.state["G"], c.state["G"])


@pytest.mark.parametrize("cfg, kw", [
    (GANConfig(ngf=4, ndf=4, g_leaky=True), dict(k=2, prior="uniform")),
    (GANConfig(ngf=4, ndf=4, num_classes=10, embed_dim=4), dict(vbn=True, ref_batch_size=16, prior="sphere")),
    (GANConfig(image_size=64, channels=3, ngf=4, ndf=4), dict(batch_size=16, limit=32)),
    (GANConfig(ngf=4, ndf=4, num_classes=10, embed_dim=4), dict(joint_d=True)),
])
def test_recipe_options_train_and_checkpoint(tmp_path, cfg, kw):
    ck = load_checkpoint(train_gan(cfg, _tcfg(epochs=1, **kw), tmp_path, progress=False))
    assert ck.epoch == 1 and ck.train_config.prior == kw.get("prior", "normal")
    h = ck.history[0]
    assert all(torch.isfinite(torch.tensor(v)) for v in h.values())


def test_a_run_dir_with_a_checkpoint_needs_resume(tmp_path):
    train_gan(TINY, _tcfg(epochs=1), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="--resume"):
        train_gan(TINY, _tcfg(epochs=1), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="not found"):
        train_gan(TINY, _tcfg(epochs=1), tmp_path / "empty", resume=True, progress=False)


def test_idx_reader_and_missing_data(tmp_path):
    import gzip
    import struct

    import numpy as np

    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 28, 28) + imgs.tobytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 2) + bytes([3, 1]))
    np.testing.assert_array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), imgs)
    ds = load_dataset("idx", data_dir=str(tmp_path))
    assert ds.images.shape == (2, 1, 32, 32) and ds.labels.tolist() == [3, 1]
    assert torch.equal(ds.images[0, 0, 2:30, 2:30], torch.from_numpy(imgs[0]))  # padded 28 -> 32
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")
    with pytest.raises(DataError, match="header says"):
        load_dataset("idx", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_dataset("idx", data_dir=str(tmp_path / "nowhere"))


def test_checkpoint_loads_with_weights_only(tmp_path):
    train_gan(TINY, _tcfg(epochs=1), tmp_path, progress=False)
    raw = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert raw["model_config"]["num_classes"] == 10 and raw["train_config"]["lr"] == 2e-4


def test_sr_training_resumes_to_the_same_weights_and_stage_two_starts_from_stage_one(tmp_path, monkeypatch):
    import ganrt_export.train as tr
    from ganrt_export.config import SRConfig, SRTrainConfig
    from ganrt_export.train import train_sr

    cfg = SRConfig(scale=2, width=4, blocks=1)
    tcfg = lambda **kw: SRTrainConfig(**{"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch": 8, "limit": 2, **kw})  # noqa: E731
    straight = load_checkpoint(train_sr(cfg, tcfg(), tmp_path / "a", progress=False))

    real_save, saves = tr.save_checkpoint, []

    def save_then_die(path, ck):  # the run is killed right after its first checkpoint
        real_save(path, ck)
        saves.append(path)
        if len(saves) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(tr, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_sr(cfg, tcfg(), tmp_path / "b", progress=False)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "b").epoch == 1
    resumed = load_checkpoint(train_sr(cfg, tcfg(), tmp_path / "b", resume=True, progress=False))
    assert resumed.epoch == 2 and _states_equal(straight.state["G"], resumed.state["G"])
    with pytest.raises(CheckpointError, match="--init"):
        train_sr(cfg, tcfg(stage="adversarial"), tmp_path / "c", progress=False)
    adv = load_checkpoint(train_sr(cfg, tcfg(stage="adversarial", init=str(tmp_path / "a"), epochs=1), tmp_path / "d",
                                   progress=False))
    assert adv.epoch == 1 and "D" in adv.state and adv.history[0]["loss_d"] > 0
    assert not _states_equal(adv.state["G"], straight.state["G"])  # stage 2 moved the stage-1 weights


def test_fine_tune_from_init_with_ema_is_exported_and_resumes_to_the_same_weights(tmp_path):
    from ganrt_export.onnx import model_from_checkpoint

    train_gan(TINY, _tcfg(epochs=1), tmp_path / "base", progress=False)
    tune = _tcfg(epochs=2, seed=1, init=str(tmp_path / "base"), ema=0.9)
    straight = load_checkpoint(train_gan(TINY, tune, tmp_path / "a", progress=False))
    assert "G_ema" in straight.state and not _states_equal(straight.state["G_ema"], straight.state["G"])
    train_gan(TINY, _tcfg(epochs=1, seed=1, init=str(tmp_path / "base"), ema=0.9), tmp_path / "b", progress=False)
    resumed = load_checkpoint(train_gan(TINY, tune, tmp_path / "b", resume=True, progress=False))
    assert _states_equal(straight.state["G_ema"], resumed.state["G_ema"])
    assert _states_equal(model_from_checkpoint(straight).state_dict(), straight.state["G_ema"])  # export takes the average
    with pytest.raises(CheckpointError, match="not a GAN run with this configuration"):
        train_gan(GANConfig(ngf=8, ndf=4, num_classes=10, embed_dim=4), tune, tmp_path / "c", progress=False)


def test_sr_bicubic_skip_starts_at_bicubic_and_ema_run_resumes_to_the_same_average(tmp_path, monkeypatch):
    import numpy as np

    import ganrt_export.train as tr
    from ganrt.evaluate.metrics import psnr_y
    from ganrt.io.images import bicubic_resize
    from ganrt_export.config import SRConfig, SRTrainConfig
    from ganrt_export.data import degrade, load_photo
    from ganrt_export.models import SRGenerator
    from ganrt_export.onnx import model_from_checkpoint
    from ganrt_export.train import train_sr, upscale_torch

    cfg = SRConfig(scale=2, width=4, blocks=1, skip="bicubic")
    hr, lr = degrade(load_photo("coffee"), 2)
    start = upscale_torch(SRGenerator(cfg).eval(), lr)  # the body starts at zero: the skip alone
    bic = bicubic_resize(lr, (hr.shape[1], hr.shape[0]))
    assert abs(psnr_y(start, hr, border=2) - psnr_y(bic, hr, border=2)) < 0.05
    tcfg = lambda **kw: SRTrainConfig(**{"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch": 8, "limit": 2,  # noqa: E731
                                         "ema": 0.9, "eval_every": 2, **kw})
    straight = load_checkpoint(train_sr(cfg, tcfg(), tmp_path / "a", progress=False))
    assert not _states_equal(straight.state["G_ema"], straight.state["G"])
    last = straight.history[-1]
    assert set(last) >= {"eval_psnr", "eval_gain_db", "eval_ssim"} and np.isfinite(last["eval_psnr"])
    real_save = tr.save_checkpoint

    def save_then_die(path, ck):  # killed right after the first epoch's checkpoint
        real_save(path, ck)
        raise KeyboardInterrupt

    monkeypatch.setattr(tr, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_sr(cfg, tcfg(), tmp_path / "b", progress=False)
    monkeypatch.undo()
    resumed = load_checkpoint(train_sr(cfg, tcfg(), tmp_path / "b", resume=True, progress=False))
    assert _states_equal(straight.state["G_ema"], resumed.state["G_ema"])
    assert _states_equal(model_from_checkpoint(straight).state_dict(), straight.state["G_ema"])  # export takes the average


def test_sr_checkpoints_from_before_the_skip_option_load_as_nearest(tmp_path):
    from ganrt_export.config import SRConfig, SRTrainConfig
    from ganrt_export.models import SRGenerator
    from ganrt_export.train import train_sr

    tcfg = SRTrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, patch=8, limit=1)
    path = train_sr(SRConfig(scale=2, width=4, blocks=1), tcfg, tmp_path / "old", progress=False)
    raw = torch.load(path, weights_only=True)
    raw["model_config"].pop("skip")
    for key in ("photos", "ema", "eval_every"):
        raw["train_config"].pop(key)
    torch.save(raw, path)  # what the first sr-x2 / sr-x4 runs wrote
    ck = load_checkpoint(path)
    assert ck.model_config.skip == "nearest" and ck.train_config.ema == 0.0 and ck.train_config.photos == ""
    SRGenerator(ck.model_config).load_state_dict(ck.state["G"])  # strict: the same modules as before
