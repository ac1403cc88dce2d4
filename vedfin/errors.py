"""Errors that the CLI turns into one clear line and a non-zero exit code."""

from __future__ import annotations


class VedfinError(Exception):
    """A problem the user can act on; the message says what to check."""

    exit_code = 1


class ConnectionFailed(VedfinError):
    exit_code = 2


class UnsupportedServer(VedfinError):
    """A PostgreSQL older than the oldest supported version."""

    exit_code = 2


class UnsafeOperation(VedfinError):
    """A dangerous command refused without an explicit --force/--reset."""

    exit_code = 3


class SchemaMismatch(VedfinError):
    exit_code = 4
