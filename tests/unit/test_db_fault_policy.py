"""The one database-fault policy (``libs.kit.db_faults``): what a request maps to DatabaseError (503), what a
loop that outlives the database waits out, and that no other module keeps a list of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, InvalidRequestError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from libs.kit.db_faults import DATABASE_ERRORS, DATABASE_FAULTS, is_transient_database_fault
from tests.python_source import parse_file

ROOT = Path(__file__).resolve().parents[2]
DRIVER_AND_SOCKET = [
    asyncpg.exceptions.CannotConnectNowError("the database system is not yet accepting connections"),
    asyncpg.exceptions.InterfaceError("connection is closed"),
    ConnectionRefusedError(111, "Connect call failed"),
    TimeoutError(),
    OperationalError("SELECT 1", {}, asyncpg.exceptions.AdminShutdownError("terminating")),
    DBAPIError("INSERT ...", {}, asyncpg.exceptions.CheckViolationError("check")),
    PoolTimeout("QueuePool limit reached"),  # every connection busy: overload, not a bug
]


@pytest.mark.parametrize("error", DRIVER_AND_SOCKET, ids=lambda e: type(e).__name__)
def test_what_the_database_or_the_way_to_it_answers_is_a_database_error_and_a_fault(error: Exception) -> None:
    assert isinstance(error, DATABASE_ERRORS)
    assert isinstance(error, DATABASE_FAULTS)


@pytest.mark.parametrize("error", [InvalidRequestError("invalid transaction")])
def test_sqlalchemys_own_errors_are_faults_for_loops_but_not_database_errors_for_requests(error: Exception) -> None:
    assert not isinstance(error, DATABASE_ERRORS)
    assert isinstance(error, DATABASE_FAULTS)
    assert is_transient_database_fault(error)


def test_refused_data_is_a_database_error_but_not_transient() -> None:
    refused = DBAPIError("INSERT ...", {}, asyncpg.exceptions.CheckViolationError("check"))
    assert isinstance(refused, DATABASE_ERRORS)
    assert not is_transient_database_fault(refused)


_DRIVER_ERROR_NAMES = {"PostgresError", "InterfaceError", "DBAPIError", "SQLAlchemyError", "OperationalError"}


def _handled_names(handler: ast.ExceptHandler) -> set[str]:
    if handler.type is None:
        return set()
    nodes = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = set()
    for node in nodes:
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return names


def test_no_module_outside_the_kit_keeps_a_list_of_database_faults() -> None:
    """An ``except`` naming the driver's error classes is a policy of its own: catch the kit's tuples."""
    offenders: list[str] = []
    for path in sorted([*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py")]):
        if path == ROOT / "libs" / "kit" / "db_faults.py":
            continue
        offenders.extend(
            f"{path.relative_to(ROOT)}:{node.lineno}"
            for node in ast.walk(parse_file(path))
            if isinstance(node, ast.ExceptHandler) and _handled_names(node) & _DRIVER_ERROR_NAMES
        )
    assert offenders == []
