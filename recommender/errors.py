"""The errors this package raises on purpose: one base, a handful of kinds.

Every error a user can act on derives from ``WarehouseError`` through one of its kinds, and
keeps the built-in class it always had (``ValueError``, ``LookupError``, ``RuntimeError``) so
that ``except ValueError`` still works. The kind says what the caller can do; the command line
(``recommender.cli.main``) and the HTTP API (``recommender.api.errors``) map kinds to exit codes
and status codes, each in one place.
"""

from __future__ import annotations


class WarehouseError(Exception):
    """An error whose message says what went wrong and what to do."""


class BadInputError(WarehouseError):
    """The input (an export, a batch, rows, an argument) is refused; fix it and retry. Nothing was changed."""


class NotFoundError(WarehouseError):
    """What was asked for is not there (yet): build or create it first (``make run``, a key, a run)."""


class ForbiddenError(WarehouseError):
    """The caller's role may not do this."""


class ConflictError(WarehouseError):
    """The warehouse is not in a state for this (another refresh runs, a run is published): wait, or resolve."""


class UnavailableError(WarehouseError):
    """A server or a lock did not answer in time; retry later. Nothing was changed."""


class InvalidArgumentError(BadInputError, ValueError):
    """An argument out of its range or vocabulary; the message names it and what it may be."""


class MissingError(NotFoundError, LookupError):
    """A table, a variable or a file that should be there is not."""


# PostgreSQL's SQLSTATEs of refusals that our own SQL raises (the predictions door), as kinds
KIND_OF_SQLSTATE: dict[str, type[WarehouseError]] = {
    "22023": BadInputError,  # invalid_parameter_value
    "P0002": NotFoundError,  # no_data_found
    "42501": ForbiddenError,  # insufficient_privilege
    "55000": ConflictError,  # object_not_in_prerequisite_state
    "55P03": UnavailableError,  # lock_not_available
}


def kind(error: BaseException) -> type[WarehouseError] | None:
    """The kind of ``error``: by the SQLSTATE it carries (``code``) when it has one, else by its class."""
    code = getattr(error, "code", None)
    if code in KIND_OF_SQLSTATE:
        return KIND_OF_SQLSTATE[code]
    kinds = (BadInputError, NotFoundError, ForbiddenError, ConflictError, UnavailableError)
    return next((candidate for candidate in kinds if isinstance(error, candidate)), None)
