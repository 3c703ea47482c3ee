"""Reading what users bring, each kind through one checked path (bad lines and files are named,
never silently dropped; docs/inputs.md states the rules): images (:mod:`~physadv.data.images`),
YOLO label lines and datasets (:mod:`~physadv.data.yolo_labels`, :mod:`~physadv.data.yolo_dataset`),
class names (:mod:`~physadv.data.class_map`), ground truth (:mod:`~physadv.data.groundtruth`),
videos (:mod:`~physadv.data.video`), photo sets and ImageFolders built on them."""
