"""Class names of what users bring (ground-truth files, YOLO label sets) mapped to a model's classes
by name, never by position.

Rules, first match wins (names compare without case, spaces, ``_`` or ``-``: ``Stop_Sign`` is
``stop sign``):

1. the user's map (``--class-map 'pedestrian=person,car=ignore'`` or a YAML/JSON file of the same;
   ``--gt-class NAME`` maps NAME to the judged class); ``ignore`` drops that class's objects;
2. the same name as one of the model's classes;
3. an alias from :data:`ALIASES` whose target the model has (``pedestrian`` → ``person``,
   ``stop`` → ``stop sign``, Pascal VOC's names → COCO's);
4. the model's only class that is the name plus or less a word (``stop`` ↔ ``stop sign``).

A label set's ids are mapped through its own names (its ``data.yaml``); without names, ids are
taken as the model's own ids, and the mapping says so. A class that matches nothing is a one-line
error naming the model's classes. :meth:`ClassMap.describe` prints the mapping used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from physadv.errors import PhysadvError

IGNORE = "ignore"
ALIASES = {
    "pedestrian": "person",
    "pedestrians": "person",
    "people": "person",
    "persons": "person",
    "human": "person",
    "stop": "stop sign",
    "stopsign": "stop sign",
    "aeroplane": "airplane",
    "motorbike": "motorcycle",
    "sofa": "couch",
    "tvmonitor": "tv",
    "diningtable": "dining table",
    "pottedplant": "potted plant",
}


def name_key(name: str) -> str:
    """A class name as physadv compares it: lower case, ``_``/``-`` as spaces, single spaces."""
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def parse_class_map(text: str | Path | None) -> dict[str, str]:
    """``'a=b,c=ignore'`` or a YAML/JSON file mapping label names (or ids) to model names."""
    if text is None or str(text).strip() == "":
        return {}
    path = Path(str(text))
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise PhysadvError(f"class map file '{path}' not found")
        try:
            loaded = (json.loads if path.suffix.lower() == ".json" else yaml.safe_load)(path.read_text())
        except (ValueError, yaml.YAMLError) as exc:
            raise PhysadvError(f"cannot read class map '{path}': {exc}") from None
        if not isinstance(loaded, dict):
            raise PhysadvError(f"class map '{path}' must map label names to model names")
        return {str(k): str(v) for k, v in loaded.items()}
    pairs = {}
    for item in str(text).split(","):
        if "=" not in item:
            raise PhysadvError(
                f"bad class map entry '{item.strip()}': write LABEL=MODEL_CLASS, e.g. pedestrian=person"
            )
        label, model = (part.strip() for part in item.split("=", 1))
        pairs[label] = model
    return pairs


class ClassMap:
    """Maps a label set's class names (or ids) to a model's class ids, recording how each was mapped.

    Args:
        model_names: the model's id → name table (a ``ClassNames`` or a dict).
        given: the user's map, label name or id → model name, id or ``ignore``.
        label_names: the label set's id → name table, or None (ids are the model's, assumed).
        source: where the labels come from, for messages (``gt.jsonl``, ``data.yaml``).
    """

    def __init__(
        self,
        model_names: Mapping[int, str] | object,
        given: Mapping[str, str] | None = None,
        label_names: Mapping[int, str] | None = None,
        source: str = "the labels",
    ):
        table = model_names.as_dict() if hasattr(model_names, "as_dict") else dict(model_names)
        self.model = {int(k): str(v) for k, v in table.items()}
        self.by_key = {name_key(v): k for k, v in self.model.items()}
        self.given = {name_key(k): v for k, v in (given or {}).items()}
        self.label_names = None if label_names is None else {int(k): str(v) for k, v in label_names.items()}
        self.source = source
        self.used: dict[str, tuple[int | None, str]] = {}  # label → (model id or None: ignored, rule)

    def _model_id(self, name: str) -> int | None:
        key = name_key(name)
        if key in self.by_key:
            return self.by_key[key]
        if key.isdigit() and int(key) in self.model:
            return int(key)
        return None

    def _rule(self, label: str, label_id: int | None = None) -> tuple[int | None, str] | None:
        key = name_key(label)
        given_key = next((k for k in (key, str(label_id)) if k in self.given), None)
        if given_key is not None:
            wanted = self.given[given_key]
            if name_key(wanted) == IGNORE:
                return None, "ignored, as given"
            found = self._model_id(wanted)
            if found is None:
                raise PhysadvError(
                    f"class map: '{wanted}' (for '{label}') is not a class of the model ({self.preview()})"
                )
            return found, "as given"
        if key in self.by_key:
            return self.by_key[key], "same name"
        alias = ALIASES.get(key) or ALIASES.get(key.replace(" ", ""))
        if alias is not None and name_key(alias) in self.by_key:
            return self.by_key[name_key(alias)], "alias"
        near = [i for k, i in self.by_key.items() if k.startswith(key + " ") or key.startswith(k + " ")]
        if len(near) == 1:  # "stop" ↔ "stop sign"; several ("speed limit" ↔ 25, 35, …) is no match
            return near[0], "name plus or less a word"
        return None

    def _unmapped(self, label: str) -> PhysadvError:
        return PhysadvError(
            f"class '{label}' in {self.source} is none of the model's classes ({self.preview()}): "
            f"map it with --class-map '{label}=CLASS' (or '{label}={IGNORE}')"
        )

    def model_id(self, label: str | int) -> int | None:
        """The model's id for a label (a name, or an id of the label set); None: ignored by the map.

        Raises:
            PhysadvError: the label maps to none of the model's classes.
        """
        if isinstance(label, int) or (str(label).strip().isdigit() and name_key(label) not in self.by_key):
            return self._from_id(int(label))
        if label not in self.used:
            found = self._rule(label)
            if found is None:
                raise self._unmapped(label)
            self.used[label] = found
        return self.used[label][0]

    def _from_id(self, label_id: int) -> int | None:
        if self.label_names is not None:
            if label_id not in self.label_names:
                known = ", ".join(map(str, sorted(self.label_names)))
                raise PhysadvError(f"class id {label_id} is not in {self.source} (ids {known})")
            name = self.label_names[label_id]
            key = f"{label_id} '{name}'"
            if key not in self.used:
                found = self._rule(name, label_id)
                if found is None:
                    raise self._unmapped(name)
                self.used[key] = found
            return self.used[key][0]
        key = str(label_id)
        if key not in self.used:
            if key in self.given:
                self.used[key] = self._rule(key, label_id)
            elif label_id in self.model:
                self.used[key] = (label_id, "id taken as the model's: no label names")
            else:
                raise PhysadvError(
                    f"class id {label_id} in {self.source} is not a class of the model ({self.preview()})"
                )
        return self.used[key][0]

    def label_ids(self) -> set[int] | None:
        """The ids a label file may use: the label set's, or the model's when it has no names."""
        if self.label_names is not None:
            return set(self.label_names)
        return set(self.model) | {int(k) for k in self.given if k.isdigit()}

    def preview(self, n: int = 12) -> str:
        names = [self.model[k] for k in sorted(self.model)]
        return ", ".join(names[:n]) + (f", … (+{len(names) - n})" if len(names) > n else "")

    def describe(self) -> str:
        """The mapping used so far, one phrase per label: ``pedestrian → person (alias)``."""
        parts = []
        for label, (model_id, rule) in self.used.items():
            target = IGNORE if model_id is None else self.model[model_id]
            parts.append(f"{label} → {target} ({rule})")
        return "; ".join(parts) if parts else "no classes used"

    def as_dict(self) -> dict[str, str | None]:
        return {label: None if i is None else self.model[i] for label, (i, _) in self.used.items()}
