"""skewless's exceptions: one hierarchy, with what each error knows as attributes.

Every exception skewless raises is a :class:`Error`. The native core picks the class and sets
the attributes; the message is skewless's own (the CLI's words).
"""

from typing import List, Optional


class Error(Exception):
    """Any skewless error. ``message`` is the text."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class DefinitionError(Error):
    """The feature definitions have problems.

    ``problems`` lists every one as a dict (``file``, ``line``, ``column``, ``message``,
    ``did_you_mean``); ``file``, ``line`` and ``column`` are the first's.
    """

    problems: List[dict] = []
    file: Optional[str] = None
    line: Optional[int] = None
    column: Optional[int] = None


class BreakingChangeError(Error):
    """``apply`` would break consumers; ``changes`` says how. Pass ``allow_breaking=True``."""

    changes: List[str] = []


class UnknownFeatureError(Error):
    """A feature, view, service or source the definitions do not hold.

    ``kind`` and ``name`` say which (the first, when several references do not resolve);
    ``suggestion`` is a near name. For a feature list, ``features`` holds every reference
    that does not resolve and ``suggestions`` the near names found.
    """

    kind: Optional[str] = None
    name: Optional[str] = None
    suggestion: Optional[str] = None
    features: List[str] = []
    suggestions: List[str] = []


class SpineError(Error):
    """The entity DataFrame (spine) cannot be used: a missing join key or time column, a
    value that does not fit its type, a feature column that would repeat one of its columns.
    ``path`` is the file, or ``entity_df`` for data given in memory."""

    path: Optional[str] = None


class BadEntityError(Error):
    """An online lookup's entity is wrong: ``entity`` (its index in ``entity_rows``, from 0) and
    ``field`` say where."""

    entity: Optional[int] = None
    field: Optional[str] = None
    view: Optional[str] = None


class StoreUnavailableError(Error):
    """The online store cannot be reached (Redis down, the embedded store locked)."""


class NothingAppliedError(Error):
    """Nothing is applied yet: run ``FeatureStore.apply()`` (or ``skewless apply``)."""


class PushError(Error):
    """A push was refused or could not be stored; ``source`` names the push source when known."""

    source: Optional[str] = None


__all__ = [
    "Error",
    "DefinitionError",
    "BreakingChangeError",
    "UnknownFeatureError",
    "SpineError",
    "BadEntityError",
    "StoreUnavailableError",
    "NothingAppliedError",
    "PushError",
]
