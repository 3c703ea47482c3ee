"""Training commands: a real (tiny) classifier run, interrupted and resumed; detector training errors."""

from __future__ import annotations

import pytest
from conftest import run_physadv

from physadv.errors import PhysadvError
from physadv.models import load_model
from physadv.scene.dataset import write_classification_set
from physadv.statefile import load_state
from physadv.training.classifier import train_classifier


@pytest.fixture(scope="module")
def tiny_signs(tmp_path_factory):
    root = tmp_path_factory.mktemp("signs")
    write_classification_set(root, per_class=6, seed=3)
    return root


def test_interrupted_training_resumes_from_checkpoint(tiny_signs, tmp_path):
    out = tmp_path / "clf.safetensors"
    seen = []

    def stop_after_first(epoch, loss, acc):
        seen.append(epoch)
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(tiny_signs, out, epochs=3, batch=32, on_epoch=stop_after_first)
    ckpt = out.with_suffix(".ckpt.safetensors")
    assert ckpt.is_file() and not out.exists()
    assert load_state(ckpt)["epoch"] == 0  # read without pickle
    result = train_classifier(
        tiny_signs, out, epochs=3, batch=32, resume=True, on_epoch=lambda e, *_: seen.append(e)
    )
    assert seen == [0, 1, 2], "resume must continue at epoch 1, not start over"
    clf = load_model(out, device="cpu")
    assert clf.kind == "classifier" and len(clf.names) == result["classes"] == 16


def test_train_classifier_cli_refuses_to_start_over_on_a_checkpoint(tiny_signs, tmp_path):
    out = tmp_path / "clf.safetensors"
    train_classifier(tiny_signs, out, epochs=1, batch=32)
    again = run_physadv("train", "classifier", "--data", tiny_signs, "--out", out, "--epochs", 1)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip() == (
        f"physadv: error: '{out.with_suffix('.ckpt.safetensors')}' holds a checkpoint at epoch 1 of this "
        "command: add --resume to continue it, or choose another --out"
    )


def test_train_classifier_cli(tiny_signs, tmp_path):
    out = tmp_path / "c.safetensors"
    result = run_physadv(
        "train",
        "classifier",
        "--data",
        str(tiny_signs),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy" in result.stdout and out.is_file()


def test_training_bad_inputs(tmp_path):
    with pytest.raises(PhysadvError, match="not found"):
        train_classifier(tmp_path / "nope", tmp_path / "x.safetensors")
    from physadv.training.detector import train_detector

    with pytest.raises(PhysadvError, match="not found"):
        train_detector(tmp_path / "data.yaml")
    with pytest.raises(PhysadvError, match="nothing to resume"):
        train_detector(tmp_path / "data.yaml", project=tmp_path, resume=True)
