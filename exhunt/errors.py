"""One rooted exception tree with locations, mapped to exit codes by the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit status contract of every exhunt command."""

    CLEAN = 0
    FINDINGS = 1
    ERROR = 2


@dataclass(frozen=True)
class Location:
    """Where in the evidence something happened: rendered as ``path:line:col``."""

    path: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        out = self.path
        if self.line is not None:
            out += f":{self.line}"
            if self.col is not None:
                out += f":{self.col}"
        return out


class ExhuntError(Exception):
    """Root of every error exhunt raises on purpose; the CLI prints it as one line."""

    exit_code = ExitCode.ERROR

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class UsageError(ExhuntError):
    """The command line asks for something impossible."""


class EvidenceError(ExhuntError):
    """Evidence cannot be opened or read at all (a single bad file is a warning instead)."""


class CaseError(ExhuntError):
    """A case directory is missing, incomplete or from an incompatible version."""


class MissingExtraError(ExhuntError):
    """An optional dependency is needed: the message names the extra to install."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the optional extra: pip install 'exhunt[{extra}]'")
