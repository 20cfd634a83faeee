"""Types of the native core (crates/python). Use the `skewless` package, which wraps it."""

from typing import Any, Callable, List, Optional, Sequence, Tuple

import pyarrow as pa

__version__: str

class TrainingSet:
    def reader(self) -> pa.RecordBatchReader: ...
    def info(self) -> str: ...
    def unwritten_manifest(self) -> str: ...
    def save(self, path: str, manifest: bool = True) -> str: ...

class Project:
    def __init__(self, defs: str, repo: str, online: Optional[str] = None) -> None: ...
    def training_set(
        self,
        spine: Any,
        features: Optional[Sequence[str]] = None,
        service: Optional[str] = None,
        full_names: bool = False,
        timestamp_column: Optional[str] = None,
        memory_limit: Optional[int] = None,
        progress: Optional[Callable[[str], None]] = None,
    ) -> TrainingSet: ...
    def online_features(
        self,
        entities: List[List[Tuple[str, Any]]],
        features: Optional[Sequence[str]] = None,
        service: Optional[str] = None,
        at: Optional[str] = None,
    ) -> str: ...
    def push(self, source: str, rows: Any, to: str = "online_and_offline") -> str: ...
    def materialize(
        self,
        end: str,
        start: Optional[str] = None,
        views: Optional[Sequence[str]] = None,
        incremental: bool = False,
        progress: Optional[Callable[[str], None]] = None,
    ) -> str: ...
    def apply(self, allow_breaking: bool = False) -> str: ...
    def plan(self) -> str: ...
    def list(self, kind: str) -> str: ...
    def check_manifest(self, path: str) -> str: ...
    def parity(
        self,
        spine: Any,
        features: Optional[Sequence[str]] = None,
        service: Optional[str] = None,
        at: Optional[Sequence[str]] = None,
        sample: Optional[int] = None,
        seed: int = 0,
        timestamp_column: Optional[str] = None,
        against_store: bool = False,
    ) -> str: ...
