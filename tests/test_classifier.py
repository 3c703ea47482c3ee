"""Classifier adapter: built-in RP2 architectures, files that carry names, preprocessing inside."""

from __future__ import annotations

import json

import pytest
import torch

from physadv.errors import ModelError
from physadv.models import Classifier, load_model, save_classifier
from physadv.models.architectures import GtsrbCNN, LisaCNN, build_architecture

NAMES = ["stop", "speed limit 45", "yield", "no entry"]


@pytest.mark.parametrize("arch", [LisaCNN, GtsrbCNN])
def test_architectures_shapes(arch):
    model = arch(num_classes=7).eval()
    assert model(torch.rand(5, 3, 32, 32)).shape == (5, 7)


def test_lisa_cnn_layers_follow_rp2():
    convs = [m for m in LisaCNN(18).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (64, 8, 2),
        (128, 6, 2),
        (128, 5, 1),
    ]


def test_adapter_resizes_and_normalises_inside():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return torch.zeros(x.shape[0], len(NAMES))

    clf = Classifier(Probe(), NAMES, input_size=(32, 32), mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    clf.logits(torch.full((2, 3, 96, 128), 0.75))
    assert seen["x"].shape == (2, 3, 32, 32)
    torch.testing.assert_close(seen["x"], torch.full((2, 3, 32, 32), 1.0))  # (0.75 - 0.5) / 0.25


def test_gradient_reaches_input_and_victim_frozen():
    clf = Classifier(LisaCNN(len(NAMES)), NAMES)
    before = {k: v.clone() for k, v in clf.module.state_dict().items()}
    x = torch.rand(3, 3, 64, 64, requires_grad=True)
    torch.nn.functional.cross_entropy(clf.logits(x), torch.tensor([1, 1, 1])).backward()
    assert x.grad.abs().sum() > 0
    assert all(torch.equal(before[k], v) for k, v in clf.module.state_dict().items())
    assert not clf.module.training


def test_safetensors_roundtrip_carries_names_and_preprocessing(tmp_path):
    model = GtsrbCNN(len(NAMES)).eval()
    path = save_classifier(
        model, tmp_path / "sign.safetensors", "gtsrb_cnn", NAMES, mean=[0.3] * 3, std=[0.2] * 3
    )
    clf = load_model(path, device="cpu")
    assert clf.kind == "classifier" and clf.names.id("Speed_Limit_45") == 1
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(clf.logits(x), model((x - 0.3) / 0.2))


JIT_DEPRECATED = "ignore:`torch.jit.(script|save)` is deprecated:FutureWarning"  # making the test file


@pytest.mark.filterwarnings(JIT_DEPRECATED)
@pytest.mark.filterwarnings("error:`torch.jit.load` is deprecated:FutureWarning")  # physadv reads quietly
def test_torchscript_with_metadata(tmp_path):
    model = LisaCNN(len(NAMES)).eval()
    path = tmp_path / "lisa.pt"
    meta = {"class_names": NAMES, "input_size": [32, 32]}
    torch.jit.save(torch.jit.script(model), str(path), _extra_files={"physadv.json": json.dumps(meta)})
    clf = load_model(path, device="cpu")
    assert clf.kind == "classifier" and len(clf.names) == 4
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(clf.logits(x), model(x))


@pytest.mark.filterwarnings(JIT_DEPRECATED)
def test_torchscript_without_names_needs_them(tmp_path):
    path = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(LisaCNN(4).eval()), str(path))
    with pytest.raises(ModelError, match="--names"):
        load_model(path, device="cpu")
    assert load_model(path, device="cpu", names=NAMES).names[3] == "no entry"


def test_torch_export_program_with_metadata_and_a_fixed_batch(tmp_path):
    """A ``torch.export`` program (.pt2) is read with the same physadv.json metadata; one exported
    for a fixed batch of 2 still takes any batch (run in chunks) and gives the module's logits."""
    from conftest import run_physadv

    model = LisaCNN(len(NAMES)).eval()
    program = torch.export.export(model, (torch.rand(2, 3, 32, 32),))
    meta = {"class_names": NAMES, "mean": [0.5] * 3, "std": [0.25] * 3}  # input size: from the program
    path = tmp_path / "lisa.pt2"
    torch.export.save(program, str(path), extra_files={"physadv.json": json.dumps(meta)})
    clf = load_model(path, device="cpu")
    assert clf.names.id("yield") == 2 and clf.input_size == (32, 32)
    assert clf.file_format == "torch.export program (fixed batch of 2: run in chunks)"
    x = torch.rand(5, 3, 32, 32, requires_grad=True)
    logits = clf.logits(x)
    torch.testing.assert_close(logits, model((x - 0.5) / 0.25))
    logits.max().backward()
    assert x.grad.abs().sum() > 0  # differentiable, so attackable
    result = run_physadv("models", "check", path)
    assert result.returncode == 0, result.stderr
    assert "format:      torch.export program" in result.stdout and "4 (stop, speed limit 45" in result.stdout
    dynamic = torch.export.export(
        model, (x.detach()[:2],), dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
    )
    torch.export.save(dynamic, str(tmp_path / "dyn.pt2"), extra_files={"physadv.json": json.dumps(meta)})
    whole = load_model(tmp_path / "dyn.pt2", device="cpu")  # any batch in one call, as the docs show
    assert whole.file_format == "torch.export program"
    torch.testing.assert_close(whole.logits(x.detach()), logits.detach())
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ModelError, match="cannot load torch.export program"):
        load_model(broken, device="cpu")


def test_bad_files_give_clear_errors(tmp_path):
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x00" * 40)
    with pytest.raises(ModelError, match="cannot read safetensors"):
        load_model(corrupt, device="cpu")
    wrong = save_classifier(LisaCNN(4), tmp_path / "wrong.safetensors", "gtsrb_cnn", NAMES)
    with pytest.raises(ModelError, match="do not fit architecture"):
        load_model(wrong, device="cpu")
    with pytest.raises(ModelError, match="unknown architecture"):
        build_architecture("resnet9000", 3)
    with pytest.raises(ModelError, match="needs a task"):
        load_model("default", device="cpu")
    other = tmp_path / "weights.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ModelError, match="unsupported model file"):
        load_model(other, device="cpu")
