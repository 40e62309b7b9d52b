"""The project's errors: one base class, and a data error that says where."""

from __future__ import annotations

from dataclasses import dataclass


class CccnError(Exception):
    """Base of every error cccn-feeds reports to a user without a traceback."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in an input file: where it is, which field, and what to do."""

    file: str
    line: int | None
    field: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        """Order problems by file, then position."""
        return (self.file, self.line or 0, self.column or 0, self.field)


class DataError(CccnError):
    """One or more problems in the data or configuration files."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type[DataError], tuple[list[Problem]], dict[str, object]]:
        # Rebuilt from its problems (the message alone would not make one): a build in a
        # child process hands its errors to the service pickled.
        return type(self), (self.problems,), self.__dict__


class ConfigError(DataError):
    """A problem in the configuration (file or environment)."""


class LockedError(CccnError):
    """Another build holds the output folder's lock."""
