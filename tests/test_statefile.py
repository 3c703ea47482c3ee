"""physadv's own state files round-trip without pickle: optimizer, generator and nested state."""

from __future__ import annotations

import pickle

import pytest
import torch

from physadv.errors import PhysadvError
from physadv.statefile import load_state, save_state


def _steps(param: torch.Tensor, opt: torch.optim.Optimizer, gen: torch.Generator, n: int) -> None:
    for _ in range(n):
        loss = (param * torch.randn(param.shape, generator=gen)).sum() ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_state_round_trips_without_pickle_and_resumes_exactly(tmp_path, monkeypatch):
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.rand(4, 5))
    opt = torch.optim.Adam([param], lr=0.03)
    gen = torch.Generator().manual_seed(7)
    _steps(param, opt, gen, 3)
    state = {
        "config": {"lr": 0.03, "ranges": (1.5, 2.0), "name": "x", "flag": True, "none": None},
        "param": param.detach().clone(),
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "history": [{"step": 1, "loss": 0.1 + 0.2}, {"step": 2, "loss": float("nan")}],
        "masks": [None, torch.ones(1, 2, 2, dtype=torch.bool)],
    }
    path = save_state(tmp_path / "checkpoint.safetensors", state)
    raw = path.read_bytes()
    assert raw[8:9] == b"{"  # a safetensors file: 8-byte header length, then the JSON header

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    back = load_state(path)
    monkeypatch.undo()

    assert back["config"] == state["config"] and isinstance(back["config"]["ranges"], tuple)
    assert back["history"][0]["loss"] == 0.1 + 0.2  # floats exactly, not rounded
    assert back["masks"][0] is None and back["masks"][1].dtype == torch.bool
    assert list(back["optimizer"]["state"]) == [0]  # integer keys survive (else Adam's state is lost)

    # continue the saved run and the original one: the same numbers, bit for bit
    _steps(param, opt, gen, 2)
    param2 = torch.nn.Parameter(back["param"])
    opt2 = torch.optim.Adam([param2], lr=0.03)
    opt2.load_state_dict(back["optimizer"])
    gen2 = torch.Generator()
    gen2.set_state(back["generator"])
    _steps(param2, opt2, gen2, 2)
    assert torch.equal(param2.detach(), param.detach())


def test_a_pickle_or_foreign_file_is_refused_in_one_line(tmp_path):
    pickled = tmp_path / "checkpoint.safetensors"
    torch.save({"config": {}}, pickled)
    with pytest.raises(PhysadvError, match="cannot read attack checkpoint"):
        load_state(pickled, "attack checkpoint")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(PhysadvError, match="is not a physadv attack checkpoint"):
        load_state(tmp_path / "weights.safetensors", "attack checkpoint")
    with pytest.raises(TypeError, match="cannot store a Generator"):
        save_state(tmp_path / "bad.safetensors", {"generator": torch.Generator()})
