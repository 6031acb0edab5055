"""Fixtures of the plan tests: one real PostgreSQL server per test process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support import plan_docs
from tests.support.postgres import PostgresUnavailable, postgres_server


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[sa.Engine]:
    """An engine on a throwaway PostgreSQL server; the test fails, saying why, without one."""
    try:
        server = postgres_server()
        running = server.__enter__()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL needed for the plan tests: {exc}")
    engine = sa.create_engine(running.url)
    try:
        yield engine
    finally:
        engine.dispose()
        server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def engines(postgres_engine: sa.Engine) -> Iterator[list[sa.Engine]]:
    """SQLite (in memory) and PostgreSQL: every filter runs on both.

    plan_docs' tables exist (empty) on both beforehand, as an application's would: each check
    then only inserts its rows, in a transaction it rolls back, instead of creating the tables.
    """
    both = [sa.create_engine("sqlite://"), postgres_engine]
    for engine in both:
        plan_docs.metadata.create_all(engine)
    yield both
    plan_docs.metadata.drop_all(postgres_engine)
