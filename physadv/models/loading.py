"""Turn what a user types after ``--model`` into an adapter, or one clear line saying why not.

Accepted:
- ``*.pt2`` — a classifier saved with ``torch.export.save`` (PyTorch's format now that TorchScript is
  deprecated), with the same ``physadv.json`` extra file (names, input size, normalisation);
- ``*.pt`` — an Ultralytics detection checkpoint, or a TorchScript classifier (with physadv's
  ``physadv.json`` extra file for names/size/normalisation, or ``--names``);
- ``*.yaml`` — an Ultralytics model definition, a local file or a name Ultralytics ships
  (``yolo11n.yaml``): random weights, for tests and dry runs;
- ``*.safetensors`` — classifier weights with metadata naming a built-in architecture;
- ``default`` — physadv's embedded models.

physadv never downloads weights: a name that is not a local file is refused.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from physadv.device import select_device
from physadv.errors import ModelError
from physadv.models.architectures import build_architecture
from physadv.models.classes import ClassNames
from physadv.models.classifier import Classifier
from physadv.models.detector import YoloDetector

EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
EMBEDDED = {
    "detect": EMBEDDED_DIR / "detector.safetensors",  # architecture yaml and names in the metadata
    "classify": EMBEDDED_DIR / "sign_classifier.safetensors",
}
TORCHSCRIPT_META = "physadv.json"
YAML_SUFFIXES = (".yaml", ".yml")


def load_model(
    spec: str | Path,
    task: str | None = None,
    device: str | torch.device = "auto",
    amp: bool = False,
    names: Sequence[str] | None = None,
    imgsz: int | None = None,
    end2end: bool | None = None,
):
    """Load a detector or classifier adapter from a path, a model yaml, or ``"default"``.

    Args:
        spec: file path, Ultralytics yaml name, or ``"default"``.
        task: ``"detect"`` or ``"classify"``; needed only to pick the embedded default.
        device: ``"auto"``, ``"cpu"``, ``"cuda[:N]"``.
        amp: float16 autocast on CUDA.
        names: class names for a classifier file that does not carry them.
        imgsz: detectors only — resize inputs so their long side has this many pixels (default: the
            model's training size, 640 for yamls; 0: keep the input's size).
        end2end: detectors only — use the NMS-free one-to-one head where there is one
            (``None``: as Ultralytics' default ``predict``).

    Raises:
        ModelError: missing, corrupt, unsupported, or remote-only model.
    """
    dev = select_device(device)
    spec = str(spec)
    if spec == "default":
        if task not in EMBEDDED:
            raise ModelError(
                "'--model default' needs a task: detect (embedded YOLO) or classify (sign classifier)"
            )
        path = EMBEDDED[task]
        if not path.is_file():
            raise ModelError(f"the embedded {task} model is missing from this install ({path.name})")
        if task == "detect":
            model = _detector(_embedded_yolo(path), dev, amp, imgsz, end2end)
        else:
            model = load_model(path, task, dev, amp, names, imgsz, end2end)
        return _with_format(model, f"physadv's embedded {task} model ({path.name}, shipped in the package)")
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix in YAML_SUFFIXES:
        return _with_format(_detector(_yolo_from_yaml(spec), dev, amp, imgsz, end2end), UNTRAINED)
    if not path.is_file():
        hint = " (a model name? physadv never downloads weights)" if path.parent == Path(".") else ""
        raise ModelError(
            f"model file '{spec}' not found{hint}: pass a local .pt/.safetensors file, "
            "a model .yaml such as yolo11n.yaml, or 'default'"
        )
    if suffix == ".safetensors":
        return _classifier_from_safetensors(path, dev, amp, names)
    if suffix == ".pt2" or _zip_holds(path, "archive_format"):
        return _classifier_from_export(path, dev, amp, names)
    if suffix in (".pt", ".pth", ".ts", ".torchscript"):
        if _zip_holds(path, "code/"):
            return _classifier_from_torchscript(path, dev, amp, names)
        what = "Ultralytics checkpoint (read with the full unpickler: load only files you trust)"
        return _with_format(_detector(_yolo_from_checkpoint(path), dev, amp, imgsz, end2end), what)
    raise ModelError(f"unsupported model file '{path.name}': expected .pt, .pt2, .yaml or .safetensors")


UNTRAINED = (
    "model yaml: randomly initialised weights (untrained; to try the pipeline, not to judge an attack)"
)


def _with_format(adapter, what: str):
    """Record which file format ``adapter`` was read from (``physadv models check`` prints it)."""
    adapter.file_format = what
    return adapter


def _detector(model: nn.Module, device, amp: bool, imgsz: int | None, end2end: bool | None) -> YoloDetector:
    """Inputs are resized to the model's training size unless ``imgsz`` says otherwise (0: native
    size), as Ultralytics' ``predict`` does with a checkpoint's ``imgsz``."""
    try:
        detector = YoloDetector(model, device=device, amp=amp, imgsz=None, end2end=end2end)
        detector.imgsz = detector.train_imgsz if imgsz is None else (imgsz or None)
        return detector
    except ValueError as exc:
        raise ModelError(str(exc)) from None


def _zip_holds(path: Path, entry: str) -> bool:
    """Whether ``path`` is a zip archive (TorchScript, torch.export) with an ``entry`` under its
    top folder: ``code/`` marks TorchScript, ``archive_format`` a torch.export program."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.split("/", 1)[-1].startswith(entry) for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _check_detect(model: nn.Module, source: str) -> nn.Module:
    from ultralytics.nn.modules.head import OBB, Classify, Detect, Pose, Segment

    head = model.model[-1] if hasattr(model, "model") else None
    if isinstance(head, (Segment, Pose, OBB, Classify)) or not isinstance(head, Detect):
        kind = type(head).__name__ if head is not None else type(model).__name__
        raise ModelError(
            f"'{source}' is not a detection model (its head is {kind}); physadv attacks detectors"
        )
    return model


def _coco_names_if_unnamed(model: nn.Module) -> None:
    """Official yamls define 80 COCO classes but no names; give them COCO's so `person` works."""
    names = getattr(model, "names", None) or {}
    if len(names) == 80 and all(str(v) == str(k) for k, v in dict(names).items()):
        from ultralytics.utils import YAML
        from ultralytics.utils.checks import check_yaml

        model.names = YAML.load(check_yaml("coco.yaml"))["names"]


def _yolo_from_yaml(spec: str) -> nn.Module:
    from ultralytics.nn.tasks import DetectionModel, guess_model_task

    try:
        task = guess_model_task(spec)
        if task != "detect":
            raise ModelError(f"'{spec}' defines a {task} model; physadv attacks detection models")
        model = DetectionModel(spec, verbose=False)
    except ModelError:
        raise
    except FileNotFoundError:
        raise ModelError(
            f"model yaml '{spec}' not found locally or among Ultralytics' model definitions"
        ) from None
    except Exception as exc:  # a malformed yaml raises many kinds of errors
        raise ModelError(f"cannot build a model from '{spec}': {_short(exc)}") from None
    _coco_names_if_unnamed(model)
    return _check_detect(model, spec)


def _embedded_yolo(path: Path) -> nn.Module:
    """physadv's own detector: weights in safetensors, its Ultralytics architecture yaml, class names
    and training size in the file's metadata — no unpickler for a file physadv ships."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from ultralytics.nn.tasks import DetectionModel

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    model = DetectionModel(json.loads(meta["yaml"]), verbose=False)
    model.load_state_dict(load_file(str(path)))
    model.names = {int(k): v for k, v in json.loads(meta["names"]).items()}
    model.args = {"task": "detect", "imgsz": int(meta["imgsz"])}
    return _check_detect(model.eval(), str(path))


def embedded_detector_checkpoint() -> Path:
    """The embedded detector as an Ultralytics checkpoint (``.pt``), for Ultralytics' own commands
    (fine-tuning it, bare ``predict`` in the benchmarks): written once into physadv's cache from the
    shipped safetensors, so only a file written on this machine goes through Ultralytics' unpickler."""
    from physadv.offline import physadv_home

    target = physadv_home() / "models" / "detector.pt"
    source = EMBEDDED["detect"]
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        model = _embedded_yolo(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        torch.save({"model": model, "train_args": dict(model.args)}, partial)
        partial.replace(target)
    return target


EXPECTED = (
    "want an Ultralytics .pt checkpoint (the whole model, as Ultralytics saves it), a TorchScript or "
    "torch.export classifier, a .safetensors of physadv's, or a model yaml"
)


def _what_file(path: Path) -> str | None:
    """What ``path`` is in plain words when its first bytes show it cannot be a PyTorch checkpoint
    (a zip archive holding ``<name>/data.pkl``, or before PyTorch 1.6 a pickle), else None."""
    size = path.stat().st_size
    if size == 0:
        return "an empty file (0 bytes)"
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                entries = zf.namelist()
        except (zipfile.BadZipFile, OSError, EOFError):
            return f"a damaged or truncated zip archive ({size} bytes: copy it again)"
        if not any(n.endswith("data.pkl") for n in entries):
            shown = ", ".join(entries[:3]) + (" …" if len(entries) > 3 else "")
            return f"a zip archive without a PyTorch checkpoint's data.pkl (it holds {shown or 'nothing'})"
        return None
    if head[:1] == b"\x80":  # a pickle: the legacy torch.save format starts with one
        return None
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the weights (run 'git lfs pull' where it was cloned)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "neither a zip archive nor a pickle"
    return "an HTML page (a failed download?)" if "<html" in text.lower() else "a text file"


def _load_checkpoint(path: Path):
    """``torch.load`` with what the file is said in plain words when it is not a checkpoint."""
    what = _what_file(path)
    if what is None:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except ModuleNotFoundError as exc:  # pickled classes of another code base (YOLOv5's `models`)
            what = f"a checkpoint of another code base (unpickling it needs the module '{exc.name}')"
            raise ModelError(f"model file '{path}' is {what}; {EXPECTED}") from None
        except Exception:  # the unpickler's reasons ("Memo value not found") help nobody
            what = "a file torch.load cannot read (damaged, or another program's pickle)"
    raise ModelError(f"model file '{path}' is {what}, not a PyTorch checkpoint; {EXPECTED}")


def _yolo_from_checkpoint(path: Path) -> nn.Module:
    ckpt = _load_checkpoint(path)
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else ckpt
    if isinstance(ckpt, dict) and model is None:
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            held = "a state dict (weights without the model's architecture)"
        else:
            held = (
                f"a dict without a model under 'model' or 'ema' (keys: {', '.join(map(str, list(ckpt)[:6]))})"
            )
        raise ModelError(f"'{path}' holds {held}, not a model; {EXPECTED}")
    if not isinstance(model, nn.Module):
        held = "a tensor" if isinstance(model, torch.Tensor) else f"a {type(model).__name__}"
        raise ModelError(f"'{path}' holds {held}, not a model; {EXPECTED}")
    return _check_detect(model, str(path))


def _read_meta(
    meta: dict, path: Path, names: Sequence[str] | None
) -> tuple[ClassNames, tuple, list | None, list | None]:
    class_names = names or meta.get("class_names")
    if not class_names:
        raise ModelError(f"'{path}' carries no class names; pass them with --names")
    size = meta.get("input_size") or [32, 32]
    return ClassNames(class_names), tuple(size), meta.get("mean"), meta.get("std")


def _classifier_from_safetensors(path: Path, device, amp: bool, names) -> Classifier:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"cannot read safetensors file '{path}': {_short(exc)}") from None
    meta = json.loads(raw_meta.get(TORCHSCRIPT_META, "{}"))
    arch = meta.get("architecture")
    if not arch:
        raise ModelError(f"'{path}' does not name its architecture (physadv.json metadata missing)")
    class_names, size, mean, std = _read_meta(meta, path, names)
    module = build_architecture(arch, len(class_names))
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"weights in '{path}' do not fit architecture '{arch}': {_short(exc)}") from None
    return _with_format(
        Classifier(module, class_names, size, mean, std, device=device, amp=amp),
        f"safetensors weights of the built-in architecture '{arch}'",
    )


def _classifier_from_torchscript(path: Path, device, amp: bool, names) -> Classifier:
    extra = {TORCHSCRIPT_META: ""}
    try:
        with warnings.catch_warnings():  # users still have TorchScript files; `models check` says so
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise ModelError(f"cannot load TorchScript file '{path}': {_short(exc)}") from None
    meta = json.loads(extra[TORCHSCRIPT_META] or "{}")
    class_names, size, mean, std = _read_meta(meta, path, names)
    return _with_format(
        Classifier(module, class_names, size, mean, std, device=device, amp=amp),
        "TorchScript (deprecated by PyTorch; torch.export .pt2 files are read too)",
    )


def _classifier_from_export(path: Path, device, amp: bool, names) -> Classifier:
    """A ``torch.export`` program: its graph runs as an ``nn.Module``; names and preprocessing come
    from the ``physadv.json`` extra file (or ``--names``), the input size from it or the program."""
    extra = {TORCHSCRIPT_META: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
        module = program.module()
    except Exception as exc:
        raise ModelError(f"cannot load torch.export program '{path}': {_short(exc)}") from None
    inputs = set(program.graph_signature.user_inputs)
    shapes = [getattr(n.meta.get("val"), "shape", ()) for n in program.graph.nodes if n.name in inputs]
    shape = shapes[0] if len(shapes) == 1 else ()
    if len(shape) != 4:
        raise ModelError(
            f"'{path}' does not take one image batch [B, 3, H, W]; physadv attacks image classifiers"
        )
    meta = json.loads(extra[TORCHSCRIPT_META] or "{}")
    if "input_size" not in meta and all(isinstance(v, int) for v in shape[2:]):
        meta["input_size"] = [int(shape[2]), int(shape[3])]
    class_names, size, mean, std = _read_meta(meta, path, names)
    batch = shape[0] if isinstance(shape[0], int) else None  # exported without a dynamic batch size
    what = "torch.export program" + (f" (fixed batch of {batch}: run in chunks)" if batch else "")
    module = _FixedBatch(module, batch) if batch else module
    return _with_format(Classifier(module, class_names, size, mean, std, device=device, amp=amp), what)


class _FixedBatch(nn.Module):
    """Runs a program exported for batches of exactly ``size`` on any batch: in chunks, the last
    one padded by repeating its first image (the padding's outputs are dropped)."""

    def __init__(self, program: nn.Module, size: int):
        super().__init__()
        self.program, self.size = program, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in x.split(self.size):
            pad = self.size - len(chunk)
            full = torch.cat([chunk, chunk[:1].expand(pad, *chunk.shape[1:])]) if pad else chunk
            outputs.append(self.program(full)[: len(chunk)])
        return torch.cat(outputs)

    def train(self, mode: bool = True):  # an exported graph's mode was fixed when it was exported
        return self


def save_classifier(
    module: nn.Module,
    path: str | Path,
    architecture: str,
    names: Sequence[str],
    input_size: tuple[int, int] = (32, 32),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    extra: dict | None = None,
) -> Path:
    """Save a built-in-architecture classifier as safetensors with its names and preprocessing."""
    from safetensors.torch import save_file

    meta = {
        "architecture": architecture,
        "class_names": list(names),
        "input_size": list(input_size),
        "mean": None if mean is None else list(mean),
        "std": None if std is None else list(std),
        **(extra or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={TORCHSCRIPT_META: json.dumps(meta)})
    return path


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
