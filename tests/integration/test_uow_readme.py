"""The reference README's examples, as written there (only the imports are adapted).

``unwrap`` and ``UserDto`` come from the reference's surrounding framework; they are the
smallest stand-ins that let the handler run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Boolean, Column, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import (
    AggregateRoot,
    DefaultOutboxRecorder,
    IntegrationEvent,
    Repository,
    Result,
    UnitOfWork,
    include_outbox_table,
    make_metadata,
    request_scope,
    standard_audit_columns,
    uuid_column,
)
from qxdb.engine import SessionFactory

T = TypeVar("T")
metadata = make_metadata()
users = Table(
    "readme_users",
    metadata,
    uuid_column("id", primary_key=True),
    Column("email", String(255), nullable=False),
    Column("name", String(100), nullable=False),
    Column("is_active", Boolean, nullable=False),
    *standard_audit_columns(),
)
outbox = include_outbox_table(metadata)


def unwrap(result: Result[T]) -> T:
    return result.unwrap_or_raise()


class UserRegistered(IntegrationEvent):
    event_name = "user.registered"
    email: str


@dataclass(kw_only=True, eq=False)
class User(AggregateRoot):
    email: str
    name: str
    is_active: bool = True

    @classmethod
    def register(cls, email: str, name: str) -> Result[User]:
        user = cls(email=email, name=name)
        user.record_event(UserRegistered(email=email))
        return Result.success(user)


@dataclass(frozen=True)
class UserDto:
    id: str
    email: str

    @classmethod
    def from_domain(cls, user: User) -> UserDto:
        return cls(id=str(user.id), email=user.email)


@dataclass(frozen=True)
class CreateUserCommand:
    email: str
    name: str


# --- "Defining a repository" -------------------------------------------------------------


class UserRepository(Repository[User]):
    entity_cls = User
    table: Table  # set to your SQLAlchemy Table at class or instance level
    filterable_fields = {"email", "name", "is_active"}
    sortable_fields = {"created_at", "email"}
    tenanted = False  # set True for multi-tenant tables


UserRepository.table = users


# --- "Unit of Work" ----------------------------------------------------------------------


class CreateUserHandler:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def handle(self, cmd: CreateUserCommand) -> Result[UserDto]:
        async with self._uow.begin() as ctx:
            user_result = User.register(cmd.email, cmd.name)
            user = unwrap(user_result)
            await ctx.users.add(user)
        # commit + outbox INSERT + event dispatch all happened above
        return Result.success(UserDto.from_domain(user))


async def test_readme_examples_work(engine: AsyncEngine, session_factory: SessionFactory) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    uow = UnitOfWork(
        session_factory, None, DefaultOutboxRecorder(outbox), repositories={"users": UserRepository}
    )
    with request_scope():
        result = await CreateUserHandler(uow).handle(CreateUserCommand("ann@x.org", "Ann"))
    dto = result.value
    async with engine.connect() as conn:
        row: Any = (await conn.execute(select(users))).one()
        event: Any = (await conn.execute(select(outbox))).one()
    assert (str(row.id), row.email, row.version) == (dto.id, "ann@x.org", 1)
    assert event.event_name == "user.registered"
    assert event.payload["aggregate_id"] == dto.id
