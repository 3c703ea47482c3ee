"""Digital baselines, the gradient-masking warnings, adversarial training and the adaptive attack
through JPEG, on the embedded sign classifier and rendered crops."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_physadv

from physadv.attacks.digital import ATTACKS, pgd
from physadv.defenses.catalogue import parse_defenses
from physadv.harness.robustness import labelled_crops, masking_warnings, robustness_rows
from physadv.models import load_model
from physadv.scene.dataset import write_classification_set
from physadv.training.classifier import train_classifier
from physadv.training.robust import TrainingDefense


@pytest.fixture(scope="module")
def classifier():
    return load_model("default", task="classify", device="cpu")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, classifier):
    root = tmp_path_factory.mktemp("held_out")
    write_classification_set(root, per_class=20, seed=5)
    images, labels = labelled_crops(root, classifier)
    return root, images.float() / 255, labels


def _accuracy(model, images, labels) -> float:
    return float((model.predict(images)[0] == labels).float().mean())


def test_baselines_order_as_the_literature_says(classifier, held_out):
    _, x, y = held_out
    x, y = x[::4], y[::4]  # 80 crops
    rows = {r["attack"]: r for r in robustness_rows(classifier, x, y, 8 / 255, tuple(ATTACKS))}
    acc = {k: r["accuracy"]["rate"] for k, r in rows.items()}
    assert acc["clean"] > 0.9
    assert acc["noise"] > acc["clean"] - 0.05  # noise of the same size barely matters
    assert acc["negative"] < 0.5
    assert acc["pgd"] <= acc["bim"] + 0.03 and acc["bim"] < acc["fgsm"] < acc["clean"] - 0.3
    for name in ("fgsm", "bim", "pgd"):
        assert rows[name]["mean_linf"] <= 8 / 255 + 1e-4
    for name in ("deepfool", "cw_l2"):  # minimum-norm attacks: always succeed, with small L2
        assert acc[name] <= 0.03 and rows[name]["mean_l2"] < rows["pgd"]["mean_l2"]
    assert acc["roa"] < acc["clean"] - 0.3
    assert masking_warnings(list(rows.values())) == []


def test_masking_warnings_fire_on_masked_numbers():
    def row(name, rate):
        return {"attack": name, "accuracy": {"rate": rate}}

    warnings = masking_warnings([row("fgsm", 0.1), row("pgd", 0.5), row("cw_l2", 0.4)])
    assert any("fgsm" in w and "beats pgd" in w for w in warnings)
    assert any("cw_l2 left 40.0 %" in w for w in warnings)


def test_adaptive_pgd_beats_non_adaptive_through_jpeg(classifier, held_out):
    _, x, y = held_out
    x, y = x[::2], y[::2]
    (jpeg,) = parse_defenses("jpeg:75", "classifier")
    defended = jpeg.wrap(classifier, 0)
    assert _accuracy(defended, x, y) > 0.9
    non_adaptive = pgd(classifier.logits, x, y, 8 / 255, torch.Generator().manual_seed(0), steps=40)
    adaptive = pgd(defended.logits, x, y, 8 / 255, torch.Generator().manual_seed(0), steps=40)
    # JPEG undoes part of a perturbation made without it; one made through it survives
    assert _accuracy(defended, x, y) - _accuracy(defended, non_adaptive, y) > 0.5
    assert _accuracy(defended, adaptive, y) < _accuracy(defended, non_adaptive, y) - 0.03


def test_pgd_adversarial_training_raises_pgd_accuracy(classifier, held_out, tmp_path):
    _, x, y = held_out
    train = tmp_path / "train"
    write_classification_set(train, per_class=40, seed=21)
    out = tmp_path / "pgd.safetensors"
    train_classifier(
        train, out, epochs=3, batch=64, seed=0, defense=TrainingDefense("pgd", 8 / 255), init="default"
    )
    robust = load_model(out, device="cpu")

    def under_pgd(model) -> float:
        return _accuracy(model, pgd(model.logits, x, y, 8 / 255, torch.Generator().manual_seed(1)), y)

    bare, trained = under_pgd(classifier), under_pgd(robust)
    assert trained > bare + 0.05, (bare, trained)
    assert _accuracy(robust, x, y) > 0.6  # the price in clean accuracy stays bounded


def test_distillation_trains_teacher_then_student(tmp_path):
    data = tmp_path / "signs"
    write_classification_set(data, per_class=4, seed=3)
    out = tmp_path / "distilled.safetensors"
    epochs = []
    train_classifier(
        data,
        out,
        epochs=1,
        batch=32,
        defense=TrainingDefense("distill"),
        on_epoch=lambda e, *_: epochs.append(e),
    )
    assert epochs == [0, 1]  # one epoch for the teacher, one for the student
    from safetensors import safe_open

    with safe_open(str(out), "pt") as f:
        meta = json.loads(next(iter(f.metadata().values())))
    assert meta["defense"] == "distill" and meta["temperature"] == 20.0


def test_baselines_and_train_cli(tmp_path):
    out = tmp_path / "baselines"
    result = run_physadv(
        "baselines", "--per-class", 2, "--attacks", "fgsm,pgd", "--defense", "jpeg:75", "--out", out
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "baselines.json").read_text())
    assert [r["attack"] for r in saved["rows"]] == ["clean", "fgsm", "pgd"]
    assert "through jpeg:75 (adaptive)" in (out / "baselines.md").read_text()
    assert len(list((out / "crops").rglob("*.png"))) == 32  # two rendered crops per class
    bad = run_physadv("baselines", "--attacks", "fgsm,magic", "--out", out)
    assert bad.returncode == 2 and "unknown attack 'magic'" in bad.stderr
    bad = run_physadv(
        "train", "classifier", "--data", out / "crops", "--defense", "armour", "--out", tmp_path / "x"
    )
    assert bad.returncode == 2 and "unknown training defense 'armour'" in bad.stderr
