"""Held-out accuracy of a detector on a rendered set it never saw (Ultralytics' own validator).

physadv scene dataset --task detect --out runs/data/detect_heldout --train 0 --val 300 --seed 7
python bench/detector_heldout.py default runs/data/detect_heldout/data.yaml   # or an Ultralytics .pt
"""

import sys

import physadv  # noqa: F401  (offline environment before ultralytics)


def main(weights: str, data: str, imgsz: int = 320) -> None:
    from ultralytics import YOLO

    if weights == "default":
        from physadv.models.loading import embedded_detector_checkpoint

        weights = str(embedded_detector_checkpoint())
    metrics = YOLO(weights).val(data=data, imgsz=imgsz, batch=32, plots=False, verbose=False, device="cpu")
    names = metrics.names
    print(f"held-out mAP@0.5 (all): {metrics.box.map50:.3f}   mAP@0.5:0.95: {metrics.box.map:.3f}")
    for i, cls in enumerate(metrics.box.ap_class_index):
        print(f"  {names[int(cls)]:>10}: AP@0.5 {metrics.box.ap50[i]:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
