"""skewless from Python: training sets, lookups, pushes and manifests, in Feast's conventions.

>>> import skewless
>>> store = skewless.FeatureStore(repo_path=".")
>>> training = store.get_historical_features(entity_df, features=["driver_hourly_stats:conv_rate"])
>>> df = training.to_pandas()

The work is done by skewless's Rust core in this process: the same point-in-time join as
``skewless training-set`` and the same serving core as ``skewless serve``. Arrow data crosses
without a copy (the Arrow C Stream interface); long calls release the GIL, log progress to the
``skewless`` logger and stop on Ctrl-C.
"""

import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import pyarrow as pa

from . import errors
from ._skewless import Project as _Project
from ._skewless import __version__
from .client import Client
from .errors import (
    BadEntityError,
    BreakingChangeError,
    DefinitionError,
    Error,
    NothingAppliedError,
    PushError,
    SpineError,
    StoreUnavailableError,
    UnknownFeatureError,
)
from .online import OnlineResponse

__all__ = ["FeatureStore", "TrainingSet", "OnlineResponse", "Client", "errors", "__version__", *errors.__all__]

_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}


def _bytes(limit: Union[int, str, None]) -> Optional[int]:
    """``2GiB``, ``512MiB`` or a number of bytes, as the CLI's ``--memory-limit`` reads them."""
    if limit is None or isinstance(limit, int):
        return limit
    text = limit.strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):] or "b"
    if unit not in _UNITS or not number:
        raise ValueError(f"memory_limit: expected bytes like 2GiB or 512MiB, found {limit!r}")
    return int(float(number) * _UNITS[unit])


def _arrow(data: Any, what: str) -> Any:
    """Rows given in any of the usual forms, as something with ``__arrow_c_stream__``."""
    if isinstance(data, (pa.Table, pa.RecordBatchReader)):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        # The index is not a column of the rows: pandas keeps row order, which is kept.
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise TypeError(
        f"{what}: expected a pandas or polars DataFrame, a pyarrow Table, RecordBatch or "
        f"RecordBatchReader, anything with __arrow_c_stream__, or a path; got {type(data).__name__}"
    )


class TrainingSet:
    """A built training set. Its Arrow arrays stay where Rust built them until asked for."""

    def __init__(self, native):
        self._native = native
        self._info = json.loads(native.info())
        self._manifest: Optional[dict] = None
        self._unwritten: Optional[dict] = None

    def to_arrow(self) -> pa.Table:
        """The rows as a ``pyarrow.Table``, sharing the built buffers (no copy)."""
        return self._native.reader().read_all()

    def to_pandas(self):
        """The rows as a pandas DataFrame (converted by pyarrow)."""
        return self.to_arrow().to_pandas()

    def to_polars(self):
        """The rows as a polars DataFrame (needs polars installed)."""
        import polars

        return polars.from_arrow(self.to_arrow())

    def to_df(self):
        """Feast's name for :meth:`to_pandas`."""
        return self.to_pandas()

    @property
    def info(self) -> dict:
        """What the build read: rows, features, feature rows read and rows that broke
        contracts per view, seconds, skew warnings, the applied version it matches."""
        return dict(self._info)

    @property
    def manifest(self) -> dict:
        """The run manifest: the one written by the last :meth:`save`; before a save, the
        manifest it will write (inputs fingerprinted before the build, rows, semantics,
        versions) with ``output`` ``None``, since only a written file has a SHA-256."""
        if self._manifest is None:
            # Computed once: it profiles every feature column.
            if self._unwritten is None:
                self._unwritten = json.loads(self._native.unwritten_manifest())
            return self._unwritten
        return self._manifest

    def save(self, path: Union[str, os.PathLike], manifest: bool = True) -> dict:
        """Writes the rows (Parquet or CSV by extension) and ``<path>.manifest.json``, exactly
        as ``skewless training-set --out path`` does. Returns the manifest."""
        self._manifest = json.loads(self._native.save(os.fspath(path), manifest))
        return self._manifest

    def __len__(self) -> int:
        return self._info["rows"]

    def __repr__(self) -> str:
        return f"<skewless.TrainingSet {self._info['rows']} rows, {len(self._info['features'])} features>"


class FeatureStore:
    """One skewless project: its definitions, its registry of applied versions and its online store.

    ``repo_path`` is the project's directory. The definitions are ``SKEWLESS_DEFS`` or
    ``<repo_path>/feature_defs``, the registry ``SKEWLESS_REPO`` or ``<repo_path>/.skewless``,
    the online store ``online`` or ``SKEWLESS_ONLINE`` (a ``redis://`` URL or a path) or the
    embedded store in the registry directory: the CLI's choices, run from ``repo_path``.
    """

    def __init__(self, repo_path: Union[str, os.PathLike] = ".", online: Optional[str] = None):
        root = Path(repo_path)
        defs = Path(os.environ.get("SKEWLESS_DEFS", "feature_defs"))
        repo = Path(os.environ.get("SKEWLESS_REPO", ".skewless"))
        self.repo_path = root
        self.defs_dir = defs if defs.is_absolute() else root / defs
        self.repo_dir = repo if repo.is_absolute() else root / repo
        self.online = online or os.environ.get("SKEWLESS_ONLINE")
        self._project = _Project(os.fspath(self.defs_dir), os.fspath(self.repo_dir), self.online)

    # Training sets

    def get_historical_features(
        self,
        entity_df: Any,
        features: Optional[Sequence[str]] = None,
        *,
        service: Optional[str] = None,
        full_feature_names: bool = False,
        timestamp_column: Optional[str] = None,
        memory_limit: Union[int, str, None] = None,
        progress: Optional[Callable[[str], None]] = None,
    ) -> TrainingSet:
        """A point-in-time-correct training set: one row per ``entity_df`` row, in its order.

        ``entity_df``: a pandas or polars DataFrame, a pyarrow Table / RecordBatch /
        RecordBatchReader, anything with ``__arrow_c_stream__``, or a Parquet or CSV path.
        ``features``: ``view:feature`` (or ``view:*``) references, or ``service=`` a feature
        service. ``full_feature_names`` names columns ``view__feature``. The time column is
        ``timestamp_column``, else ``event_timestamp``, else the one timestamp column.
        ``progress`` is called with each progress line (else they go to the ``skewless``
        logger); an exception it raises stops the build.
        """
        if isinstance(features, str):
            features = [features]
        if isinstance(entity_df, (str, os.PathLike)):
            spine: Any = os.fspath(entity_df)
        else:
            spine = _arrow(entity_df, "entity_df")
        native = self._project.training_set(
            spine,
            features=list(features) if features is not None else None,
            service=service,
            full_names=full_feature_names,
            timestamp_column=timestamp_column,
            memory_limit=_bytes(memory_limit),
            progress=progress,
        )
        return TrainingSet(native)

    # Online

    def get_online_features(
        self,
        features: Optional[Sequence[str]] = None,
        entity_rows: Iterable[Mapping[str, Any]] = (),
        *,
        service: Optional[str] = None,
        at: Optional[str] = None,
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        """Looks features up in the online store through the serving core, as the server
        does. ``at`` is an instant (RFC 3339, a date, ``now``); default now."""
        if isinstance(features, str):
            features = [features]
        rows = [list(row.items()) for row in entity_rows]
        doc = self._project.online_features(
            rows, features=list(features) if features is not None else None, service=service, at=at
        )
        return OnlineResponse(json.loads(doc), full_feature_names)

    def push(self, push_source_name: str, df: Any, to: str = "online_and_offline") -> dict:
        """Pushes rows to a ``push: true`` source: logged first, then written online newer-wins
        (``to`` = ``"online_and_offline"``, ``"online"`` or ``"offline"``). Returns the report."""
        # Feast's PushMode (ONLINE, OFFLINE, ONLINE_AND_OFFLINE) works too.
        to = to if isinstance(to, str) else getattr(to, "name", str(to)).lower()
        return json.loads(self._project.push(push_source_name, _arrow(df, "df"), to))

    def materialize(
        self,
        start_date: Any,
        end_date: Any,
        feature_views: Optional[Sequence[str]] = None,
        progress: Optional[Callable[[str], None]] = None,
    ) -> List[dict]:
        """Writes each view's latest values as of ``end_date`` (rows from ``start_date`` on).
        ``progress`` is called with a line per view done (else the ``skewless`` logger)."""
        return json.loads(
            self._project.materialize(_instant(end_date), start=_instant(start_date),
                                      views=list(feature_views or []), incremental=False, progress=progress)
        )

    def materialize_incremental(
        self,
        end_date: Any,
        feature_views: Optional[Sequence[str]] = None,
        progress: Optional[Callable[[str], None]] = None,
    ) -> List[dict]:
        """Materializes from each view's last materialization up to ``end_date``."""
        return json.loads(
            self._project.materialize(_instant(end_date), views=list(feature_views or []), incremental=True,
                                      progress=progress)
        )

    def parity(
        self,
        entity_df: Any,
        features: Optional[Sequence[str]] = None,
        *,
        service: Optional[str] = None,
        at: Optional[Sequence[Any]] = None,
        sample: Optional[int] = None,
        seed: int = 0,
        timestamp_column: Optional[str] = None,
        against_online: bool = False,
    ) -> dict:
        """The parity harness (``skewless parity``): ``entity_df`` as for
        :meth:`get_historical_features` (a DataFrame, Arrow data or a path); for its entities at each instant
        of ``at`` (default: the spine's earliest, median and latest), the training-set value
        against the served one. ``against_online`` compares with what the online store
        serves now instead of fresh stores. Returns the report: per view ``values``,
        ``present``, ``mismatches``; every mismatch with its cause."""
        if isinstance(features, str):
            features = [features]
        return json.loads(
            self._project.parity(
                os.fspath(entity_df) if isinstance(entity_df, (str, os.PathLike)) else _arrow(entity_df, "entity_df"),
                features=list(features) if features is not None else None,
                service=service,
                at=[_instant(t) for t in at] if at is not None else None,
                sample=sample,
                seed=seed,
                timestamp_column=timestamp_column,
                against_store=against_online,
            )
        )

    # Definitions and the registry

    def plan(self) -> dict:
        """What :meth:`apply` would change, and which changes break consumers."""
        return json.loads(self._project.plan())

    def apply(self, allow_breaking: bool = False) -> dict:
        """Records the definitions as the applied version (what is served)."""
        return json.loads(self._project.apply(allow_breaking))

    def list_entities(self) -> List[dict]:
        return json.loads(self._project.list("entities"))

    def list_data_sources(self) -> List[dict]:
        return json.loads(self._project.list("sources"))

    def list_feature_views(self) -> List[dict]:
        return json.loads(self._project.list("views"))

    def list_features(self) -> List[dict]:
        return json.loads(self._project.list("features"))

    def list_feature_services(self) -> List[dict]:
        return json.loads(self._project.list("services"))

    def check_manifest(self, path: Union[str, os.PathLike]) -> dict:
        """A training manifest against what is served now: ``differences`` empty when the
        model would be served the features it learned."""
        return json.loads(self._project.check_manifest(os.fspath(path)))


def _instant(value: Any) -> str:
    """A datetime (naive is UTC), a date or text, as the instant text skewless reads."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
