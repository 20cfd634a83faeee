"""Online answers: one type for in-process lookups and for a server's, in Feast's shapes."""

from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa


def _split(name: str) -> Tuple[str, str]:
    """``view:feature`` (in process) or ``view__feature`` (a server asked for full names)."""
    if ":" in name:
        view, feature = name.split(":", 1)
    else:
        view, feature = name.split("__", 1)
    return view, feature


class OnlineResponse:
    """Looked-up values with their statuses (``PRESENT``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``)
    and event times, one result per entity, in the order asked."""

    def __init__(self, doc: Dict[str, Any], full_feature_names: bool = False):
        self.doc = doc
        self.full_feature_names = full_feature_names
        results = doc.get("results", [])
        first = results[0]["features"] if results else {}
        self._refs: List[Tuple[str, str]] = [_split(k) for k in first]
        self._keys = list(first)

    @property
    def at(self) -> Optional[str]:
        """The instant the values are as of."""
        return self.doc.get("at")

    @property
    def versions(self) -> Dict[str, Any]:
        """The view (and service) versions served: compare them with a training manifest's."""
        return self.doc.get("versions", {})

    def _name(self, view: str, feature: str) -> str:
        return f"{view}__{feature}" if self.full_feature_names else feature

    def _column(self, key: str, part: str) -> List[Any]:
        return [r["features"][key][part] for r in self.doc.get("results", [])]

    def to_dict(self) -> Dict[str, List[Any]]:
        """Feast's shape: each entity field, then each feature, to its list of values."""
        out: Dict[str, List[Any]] = {}
        results = self.doc.get("results", [])
        for field in (results[0]["entity"] if results else {}):
            out[field] = [r["entity"].get(field) for r in results]
        for key, (view, feature) in zip(self._keys, self._refs):
            out[self._name(view, feature)] = self._column(key, "value")
        return out

    def statuses(self) -> Dict[str, List[str]]:
        """Each feature to its statuses, one per entity."""
        return {self._name(v, f): self._column(k, "status") for k, (v, f) in zip(self._keys, self._refs)}

    def event_timestamps(self) -> Dict[str, List[Optional[str]]]:
        """Each feature to the event times of the rows served (RFC 3339; ``None`` when none)."""
        return {self._name(v, f): self._column(k, "event_timestamp") for k, (v, f) in zip(self._keys, self._refs)}

    def to_arrow(self) -> pa.Table:
        """:meth:`to_dict` as a ``pyarrow.Table``."""
        return pa.table(self.to_dict())

    def to_df(self):
        """:meth:`to_dict` as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        return f"<skewless.OnlineResponse {len(self.doc.get('results', []))} entities, {len(self._keys)} features>"
