"""Inference copies of detectors with every BatchNorm folded into the convolution before it, as
Ultralytics' own ``predict`` runs them (``DetectionModel.fuse``; the folding is torch's
``fuse_conv_bn_weights``). A replay runs the model tens of thousands of times and never needs a
gradient: on the shared 2-core CPU the folded forward of the embedded detector (batch 8 at 256×320)
took 0.83–0.95 of the unfolded one's time, with raw outputs equal to 2e-4 pixel
(``bench/replay_fps.py`` measures the whole replay). Attacks keep the unfolded model: its weights,
its BatchNorm layers and its ``state_dict`` are what the tests check are never changed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from physadv.models.detector import YoloDetector
from physadv.models.frozen import freeze


def fused_for_inference(detector):
    """A copy of ``detector`` whose Conv → BatchNorm pairs are folded into single convolutions; the
    detector itself (unchanged) where there is nothing to fold (not an Ultralytics model in memory:
    TorchScript, an exported graph, a classifier). The head's branches are kept as they are (unlike
    ``DetectionModel.fuse``, which drops the one-to-many branch of end-to-end heads)."""
    if not isinstance(detector, YoloDetector) or isinstance(detector.model, torch.jit.ScriptModule):
        return detector
    from ultralytics.nn.modules import Conv, Conv2
    from ultralytics.utils.torch_utils import fuse_conv_and_bn

    net: nn.Module = copy.deepcopy(detector.model)
    folded = 0
    for m in net.modules():
        if isinstance(m, Conv) and isinstance(getattr(m, "bn", None), nn.BatchNorm2d):  # DWConv, Conv2 too
            if isinstance(m, Conv2):
                m.fuse_convs()  # its parallel 1×1 branch into the 3×3 first
            m.conv = fuse_conv_and_bn(m.conv, m.bn)
            delattr(m, "bn")
            m.forward = m.forward_fuse
            folded += 1
    if not folded:
        return detector
    twin = copy.copy(detector)
    twin.model = freeze(net, detector.device)
    twin.head = twin.model.model[-1]
    return twin
