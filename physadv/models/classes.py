"""Class names travel with every model; users name classes by name or id."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from physadv.data.class_map import name_key
from physadv.errors import PhysadvError

LIST_ALL_UP_TO = 20  # an unknown name lists every class of a model with at most this many


class ClassNames:
    """An id → name table with forgiving lookup (case, spaces, underscores) and helpful errors.

    Examples:
        >>> names = ClassNames({0: "person", 11: "stop sign"})
        >>> names.id("Stop_Sign"), names.id("0"), names[11]
        (11, 0, 'stop sign')
    """

    def __init__(self, names: Mapping[int, str] | Iterable[str]):
        if not isinstance(names, Mapping):
            names = dict(enumerate(names))
        self._names = {int(k): str(v) for k, v in names.items()}

    @staticmethod
    def key(name: str) -> str:
        return name_key(name)

    @classmethod
    def same(cls, a: str, b: str) -> bool:
        """Names of the same thing: equal as keys, or one the other plus a word ("stop" and "stop sign":
        scenes name signs by their face, COCO adds "sign")."""
        a, b = cls.key(a), cls.key(b)
        return a == b or a.startswith(b + " ") or b.startswith(a + " ")

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, class_id: int) -> str:
        return self._names[int(class_id)]

    def __iter__(self):
        return iter(self._names.items())

    def as_dict(self) -> dict[int, str]:
        return dict(self._names)

    def id(self, name_or_id: str | int) -> int:
        """The class id for a name (``"stop sign"``, ``"Stop_Sign"``) or an id (``11``, ``"11"``)."""
        if isinstance(name_or_id, int) or str(name_or_id).strip().isdigit():
            class_id = int(name_or_id)
            if class_id not in self._names:
                raise PhysadvError(
                    f"class id {class_id} is out of range: the model has ids {self._id_range()}"
                )
            return class_id
        wanted = self.key(str(name_or_id))
        for class_id, name in self._names.items():
            if self.key(name) == wanted:
                return class_id
        close = difflib.get_close_matches(wanted, [self.key(n) for n in self._names.values()], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if len(self) <= LIST_ALL_UP_TO:  # few classes: name them all, so the user can pick one
            listed = ", ".join(repr(self._names[k]) for k in sorted(self._names))
            raise PhysadvError(
                f"unknown class '{name_or_id}': the model's {len(self)} classes are {listed}{hint}"
            )
        raise PhysadvError(f"unknown class '{name_or_id}': the model has {len(self)} classes{hint}")

    def first_of(self, *names: str) -> int | None:
        """The id of the first of ``names`` the model has, or None."""
        wanted = [self.key(n) for n in names]
        found = {self.key(name): class_id for class_id, name in self._names.items()}
        return next((found[w] for w in wanted if w in found), None)

    def ids(self, names_or_ids: Iterable[str | int]) -> list[int]:
        return [self.id(n) for n in names_or_ids]

    def _id_range(self) -> str:
        return f"{min(self._names)}..{max(self._names)}" if self._names else "none"

    def preview(self, n: int = 5) -> str:
        shown = [self._names[k] for k in sorted(self._names)[:n]]
        more = f", … (+{len(self) - n})" if len(self) > n else ""
        return ", ".join(shown) + more
