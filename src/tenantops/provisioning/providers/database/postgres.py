"""``postgres`` databases: one database and one login role per tenant on a PostgreSQL server.

What `ensure` converges to, for a `Database` ``name`` with login ``login``:

- a role ``login`` with LOGIN and nothing else (no superuser, createdb, createrole,
  replication or bypassrls; a connection limit), member of no role, whose password is the value of
  the secret ``secret`` in the secrets provider. The password is sent as a SCRAM-SHA-256
  verifier computed on this side, so the plain text never reaches the server or its logs;
- a database ``name`` owned by ``login``, created from ``template0`` in UTF-8, with every
  privilege revoked from PUBLIC, so no other login can even connect to it;
- a ``tenantops_meta`` table in it (owned by ``login``) naming the database, which the tenant
  app reads to show it reaches its own database (`read_metadata`).

With ``login_enabled`` False (a suspended tenant) the role is ``NOLOGIN`` and its open
sessions are ended (``pg_terminate_backend``): PostgreSQL checks LOGIN only when a session
starts (CREATE ROLE, "LOGIN/NOLOGIN"), so a session open before would otherwise go on.
Nothing is dropped; ``login_enabled`` True makes it ``LOGIN`` again.

`remove` terminates the database's connections, drops it, then drops the login. Neither the
admin password nor the tenant's password is ever logged, put in an output, or in a message.

The admin role tenantops connects as needs CREATEDB and CREATEROLE (a superuser works too);
when it is not a superuser it grants itself membership in each tenant login it creates,
which PostgreSQL requires to create a database owned by that login and to drop it later.
Identifiers are quoted by psycopg's `sql.Identifier`, and `Database` itself refuses any name
outside ``[a-z][a-z0-9_]*`` before a connection is opened.

**Schema mode** (`Database.schema` set: a plan's ``mode = "schema"``): the tenant's data is
the schema ``schema`` (owned by the login) in the pooled database ``name`` (owned by the admin
role, made on first use, CONNECT for the tenants' logins only), and the login's
``search_path`` in that database is its schema. Other tenants' logins cannot use the schema
(no USAGE); they see its name in the catalogs, as every PostgreSQL role does.

**Credential rotation** (`DatabaseLogin`, `RetiredLogin`; docs/fleet.md): the owner ``login``
and a second login ``<login>_b``, a member of the owner only that acts as it (``ALTER ROLE
... SET role``), used in turn. ``tenantops_meta`` records the login in use (``active_login``,
``active_secret``, ``switched_at``): in the tenant's database, or in schema mode in its schema,
where the second login also gets the schema as its search path in the pooled database.
`ensure` of a rotated tenant converges the login in use and keeps the owner NOLOGIN.

**Servers**: each `Database` names its server (`Database.server`); the provider reaches
each as ``[[providers.database.servers]]`` says (or the section's own ``admin_url``: the
server ``default``). **Moves** (`DatabaseCopy`, `CopyCheck`) are in
`tenantops.provisioning.providers.database.pg_copy`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from tenantops.config import DEFAULT_SERVER, DatabaseServerSettings, PostgresDatabaseSettings
from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.database import (
    CopyCheck,
    Database,
    DatabaseCopy,
    DatabaseLogin,
    DatabaseMode,
    DatabaseProvider,
    DatabaseSchema,
    RetiredLogin,
    unconfigured_server,
)
from tenantops.provisioning.providers.secrets import SecretsProvider

if TYPE_CHECKING:
    from sqlalchemy import Connection as SQLConnection

__all__ = ["PostgresDatabases", "PostgresServer", "alternate_login"]

Connection = psycopg.Connection[tuple[Any, ...]]

# SQLSTATE classes and codes worth retrying: connection trouble, resources, lock conflicts,
# the server shutting down or starting.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")
_TRANSIENT_SQLSTATES = frozenset({"55006", "55P03"})  # object in use, lock not available
# Connection failures carry no SQLSTATE in psycopg; these server answers are worth a retry.
_TRANSIENT_CONNECT_TEXT = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "remaining connection slots are reserved",
)


@dataclass(frozen=True)
class PostgresServer:
    """One server tenants' databases go on: how the admin role reaches it.
    ``password_source``: called for the password of each admin connection instead of
    ``admin_password`` (an Entra ID access token on Azure, which expires)."""

    name: str
    admin_url: str
    admin_password: str | None = None
    password_source: Callable[[], str] | None = None


class PostgresDatabases(DatabaseProvider):
    """Tenant databases on PostgreSQL servers: ``admin_url`` is the server ``default``, or
    ``servers`` lists them; credentials rotate between two logins (`DatabaseLogin`,
    `RetiredLogin`; docs/fleet.md), on the server the tenant's placement records.

    ``admin_url`` is a libpq URL or conninfo string for the admin role, without the password
    when possible: give it as ``admin_password``, or let libpq find it (``PGPASSWORD``,
    ``~/.pgpass``). ``connection_limit`` caps each tenant login's sessions. ``tools_directory``
    and ``move_timeout``: where ``pg_dump``/``pg_restore`` are and how long one copy of a move
    may take.
    """

    name = "postgres"
    resource_types: ClassVar[tuple[type[Resource], ...]] = (
        Database, DatabaseSchema, DatabaseLogin, RetiredLogin, DatabaseCopy, CopyCheck)
    modes: ClassVar[tuple[DatabaseMode, ...]] = ("database", "schema")
    copies_data = True

    def __init__(
        self,
        admin_url: str,
        secrets: SecretsProvider,
        *,
        admin_password: str | None = None,
        connection_limit: int = 20,
        connect_timeout: float = 10.0,
        servers: Sequence[PostgresServer] | None = None,
        tools_directory: Path | None = None,
        move_timeout: float = 3600.0,
    ) -> None:
        super().__init__()
        if connection_limit < 1:
            raise PermanentProviderError(
                f"connection_limit must be at least 1 (got {connection_limit})",
                provider="database:postgres",
            )
        self.servers: dict[str, PostgresServer] = {
            s.name: s for s in (servers or [PostgresServer(DEFAULT_SERVER, admin_url,
                                                           admin_password)])}
        self.admin_url = admin_url
        self.secrets = secrets
        self.connection_limit = connection_limit
        self.connect_timeout = connect_timeout
        self.tools_directory = tools_directory
        self.move_timeout = move_timeout
        self._admin_password = admin_password

    @classmethod
    def from_settings(
        cls, settings: PostgresDatabaseSettings, secrets: SecretsProvider,
        servers: Sequence[DatabaseServerSettings] | None = None,
    ) -> PostgresDatabases:
        """The provider ``[providers.database.postgres]`` describes, on ``servers`` (the
        ``providers.database.servers``; none: the section's own server) (no I/O)."""
        password = settings.admin_password
        return cls(
            settings.admin_url, secrets,
            admin_password=password.get_secret_value() if password is not None else None,
            connection_limit=settings.connection_limit,
            connect_timeout=settings.connect_timeout_seconds,
            servers=[PostgresServer(s.name, s.admin_url or settings.admin_url,
                                    s.admin_password.get_secret_value()
                                    if s.admin_password is not None else None)
                     for s in servers] if servers else None,
            tools_directory=settings.tools_directory,
            move_timeout=settings.move_timeout_seconds,
        )

    def server(self, database: Database) -> PostgresServer:
        """The server ``database`` names; `PermanentProviderError` for one not configured."""
        found = self.servers.get(database.server)
        if found is None:
            raise unconfigured_server(database.server, self.servers, database.key)
        return found

    @contextmanager
    def schema_connection(self, schema: DatabaseSchema) -> Iterator[SQLConnection]:
        """The tenant's database as the admin role acting as the database's owner
        (``SET ROLE``): what the migrations make belongs to the tenant's login, whichever of
        its two logins the app currently signs in with."""
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        view = Database(schema.database, schema.owner, "unused", server=schema.server)
        conninfo = psycopg.conninfo.make_conninfo(
            self.admin_conninfo(view, dbname=schema.database),
            application_name="tenantops-migrations")

        def connect() -> psycopg.Connection[Any]:
            try:
                connection = psycopg.connect(conninfo)
            except psycopg.Error as exc:
                raise self._schema_connect_error(exc, schema) from None
            connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(schema.owner)))
            if schema.schema is not None:
                connection.execute(sql.SQL("SET search_path TO {}").format(
                    sql.Identifier(schema.schema)))
            connection.commit()
            return connection

        engine = create_engine("postgresql+psycopg://", creator=connect, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()

    def _schema_connect_error(self, exc: psycopg.Error, schema: DatabaseSchema
                              ) -> PermanentProviderError | TransientProviderError:
        text = _first_line(exc)
        if f'database "{schema.database}" does not exist' in str(exc):
            return PermanentProviderError(
                f"database {schema.database!r} does not exist on the server; onboard the "
                "tenant (or retry its onboarding) first", resource=schema.key)
        answered = "FATAL:" in str(exc)
        if answered and not any(t in str(exc) for t in _TRANSIENT_CONNECT_TEXT):
            return PermanentProviderError(
                f"PostgreSQL refused the admin connection to {schema.database} ({text}); "
                "check [providers.database.postgres]", resource=schema.key)
        return TransientProviderError(f"could not connect to PostgreSQL ({text}); will retry",
                                      resource=schema.key)

    def schema_error(self, exc: Exception, schema: DatabaseSchema
                     ) -> PermanentProviderError | TransientProviderError:
        cause = getattr(exc, "orig", None) or exc
        if isinstance(cause, (PermanentProviderError, TransientProviderError)):
            return cause
        if isinstance(cause, psycopg.OperationalError) or (
                isinstance(cause, psycopg.Error)
                and (cause.sqlstate or "")[:2] in _TRANSIENT_SQLSTATE_CLASSES):
            return TransientProviderError(
                f"PostgreSQL failed while migrating database {schema.database} "
                f"({_first_line(cause)}); will retry", resource=schema.key)
        return super().schema_error(exc, schema)

    # -- ensure ------------------------------------------------------------------------------

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, DatabaseCopy):
            from tenantops.provisioning.providers.database.pg_copy import copy

            return copy(self, resource)
        if isinstance(resource, CopyCheck):
            from tenantops.provisioning.providers.database.pg_copy import check

            return check(self, resource)
        if isinstance(resource, DatabaseSchema):
            return self.migrate_schema(resource)
        if isinstance(resource, DatabaseLogin):
            return self._switch_login(resource)
        if isinstance(resource, RetiredLogin):
            return self._retire_login(resource)
        if not isinstance(resource, Database):
            raise PermanentProviderError(f"not a database: {resource.key}")
        resource = self._as_owner(resource)
        active = self._active_login(resource)
        if active is not None and active[0] != resource.login:
            return self._ensure_rotated(resource, *active)
        password = self.secrets.read(resource.secret)
        with self.admin_connection(resource) as admin:
            changed = self._ensure_login(admin, resource, password)
            if resource.schema is None:
                changed = self._ensure_database(admin, resource) or changed
            else:
                changed = self._ensure_shared_database(admin, resource) or changed
            if not resource.login_enabled:
                self._end_sessions(admin, resource)
            host, port = admin.info.host, admin.info.port
        if resource.schema is not None:
            with self.admin_connection(resource, dbname=resource.name) as shared:
                changed = self._ensure_schema(shared, resource) or changed
                if not resource.empty:
                    changed = self._ensure_metadata(shared, resource) or changed
        elif not resource.empty:
            with self.admin_connection(resource, dbname=resource.name) as tenant_db:
                changed = self._ensure_metadata(tenant_db, resource) or changed
        outputs: dict[str, Any] = {
            "database": resource.name,
            "login": resource.login,
            "secret": resource.secret,
            "server": resource.server,
            "mode": resource.mode,
            "location": f"postgresql://{resource.login}@{host}:{port}/{resource.name}",
            "login_enabled": resource.login_enabled,
        }
        if resource.schema is not None:
            outputs["schema"] = resource.schema
        return Ready(outputs, changed=changed)

    def _end_sessions(self, admin: Connection, resource: Database) -> None:
        self._run(admin, resource, sql.SQL(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = {} AND pid <> pg_backend_pid()").format(sql.Literal(resource.login)))

    # -- remove ------------------------------------------------------------------------------

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, (DatabaseCopy, CopyCheck)):
            return Ready({}, changed=False)
        if isinstance(resource, DatabaseSchema):
            return Ready({"database": resource.database}, changed=False)  # dropped with it
        if not isinstance(resource, (DatabaseLogin, RetiredLogin, Database)):
            raise PermanentProviderError(f"not a database: {resource.key}")
        if not isinstance(resource, Database):
            return Ready({"login": resource.login}, changed=False)  # dropped with the database
        changed = False
        with self.admin_connection(resource) as admin:
            if resource.schema is None:
                changed = self._drop_database(admin, resource, resource.name)
            elif self._database_owner(admin, resource.name) is not None:
                # Both logins of a rotated tenant hold CONNECT and a search path there.
                present = [login for login in (resource.login, alternate_login(resource.login))
                           if self._role(admin, login) is not None]
                with self.admin_connection(resource, dbname=resource.name) as shared:
                    changed = self._drop_schema(shared, resource, present)
                for login in present:
                    self._run(admin, resource, sql.SQL("REVOKE ALL ON DATABASE {} FROM {}")
                              .format(sql.Identifier(resource.name), sql.Identifier(login)))
            # Both of the tenant's logins (credential rotation's second one, when it exists).
            logins = [] if resource.keep_login else [alternate_login(resource.login),
                                                      resource.login]
            for login in logins:
                if self._role(admin, login) is None:
                    continue
                self._run(
                    admin, resource,
                    sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE usename = {} AND pid <> pg_backend_pid()"
                            ).format(sql.Literal(login)),
                )
                self._run(admin, resource,
                          sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
                changed = True
        outputs: dict[str, Any] = {"database": resource.name, "login": resource.login,
                                   "server": resource.server}
        if resource.schema is not None:
            outputs["schema"] = resource.schema
        return Ready(outputs, changed=changed)

    def _drop_database(self, admin: Connection, resource: Database, name: str) -> bool:
        if self._database_owner(admin, name) is None:
            return False
        # Refuse new sessions first so none slips in between terminate and drop.
        self._run(admin, resource, sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false")
                  .format(sql.Identifier(name)))
        self._run(
            admin, resource,
            sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = {} AND pid <> pg_backend_pid()").format(sql.Literal(name)),
        )
        self._run(admin, resource, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                  .format(sql.Identifier(name)))
        return True

    def _drop_schema(self, shared: Connection, resource: Database,
                     logins: Sequence[str]) -> bool:
        """Drop the tenant's schema, after ending the sessions ``logins`` (those of its
        logins that exist) have in the pooled database; their settings there go too."""
        if resource.schema is None:
            return False
        for login in logins:
            self._run(shared, resource, sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND usename = {} AND pid <> pg_backend_pid()"
            ).format(sql.Literal(login)))
        existed = self._schema_owner(shared, resource.schema) is not None
        self._run(shared, resource, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                  .format(sql.Identifier(resource.schema)))
        for login in logins:
            self._run(shared, resource, sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
                sql.Identifier(login), sql.Identifier(resource.name)))
        return existed

    # -- observe -----------------------------------------------------------------------------

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, (DatabaseCopy, CopyCheck)):
            return None
        if isinstance(resource, DatabaseSchema):
            return self.observe_schema(resource)
        if isinstance(resource, DatabaseLogin | RetiredLogin):
            view = Database(resource.database, resource.login, "unused", server=resource.server)
            with self.admin_connection(view) as admin:
                role = self._role(admin, resource.login)
            return None if role is None else {"login": resource.login,
                                              "login_enabled": bool(role["rolcanlogin"])}
        if not isinstance(resource, Database):
            raise PermanentProviderError(f"not a database: {resource.key}")
        resource = self._as_owner(resource)
        with self.admin_connection(resource) as admin:
            owner = self._database_owner(admin, resource.name)
            role = self._role(admin, resource.login)
        schema_owner = None
        if resource.schema is not None and owner is not None:
            with self.admin_connection(resource, dbname=resource.name) as shared:
                schema_owner = self._schema_owner(shared, resource.schema)
            if schema_owner is None:
                owner = None  # the pooled database exists, the tenant's schema does not
        if owner is None and role is None:
            return None
        found: dict[str, Any] = {
            "name": resource.name if owner is not None else None,
            "owner": schema_owner or owner,
            "login": resource.login if role is not None else None,
            "secret": resource.secret,
            "server": resource.server,
            "login_enabled": bool(role["rolcanlogin"]) if role is not None else False,
        }
        if resource.schema is not None:
            found["schema"] = resource.schema if schema_owner is not None else None
        active = self._active_login(resource) if owner is not None else None
        if active is not None and active[0] != resource.login:
            # Rotated: the app signs in as the other login; whether it can is what counts.
            with self.admin_connection(resource) as admin:
                in_use = self._role(admin, active[0])
            found.update(login=active[0], secret=active[1], active_login=active[0],
                         login_enabled=bool(in_use is not None and in_use["rolcanlogin"]))
        return found

    # -- credential rotation: two logins used in turn (docs/fleet.md) -----------------------

    def _data_owner(self, resource: Database) -> str | None:
        """The owner of the tenant's data: its database's, or in schema mode its schema's in
        the pooled database; None when that does not exist."""
        with self.admin_connection(resource) as admin:
            owner = self._database_owner(admin, resource.name)
        if owner is None or resource.schema is None:
            return owner
        with self.admin_connection(resource, dbname=resource.name) as shared:
            return self._schema_owner(shared, resource.schema)

    def _as_owner(self, resource: Database) -> Database:
        """``resource`` named by its owner: plans build the database from the tenant's
        recorded login, which after a rotation is the second login (``<owner>_b``, secret
        ``<owner's secret>-b``); the owner of the database (or, in schema mode, of the
        tenant's schema) stays the first."""
        if not (resource.login.endswith("_b") and resource.secret.endswith("-b")):
            return resource
        owner = resource.login[:-2]
        if self._data_owner(resource) != owner:
            return resource
        return replace(resource, login=owner, secret=resource.secret[:-2])

    def _active_login(self, resource: Database) -> tuple[str, str] | None:
        """The login the tenant's app uses and its secret, when a rotation switched it away
        from the owner (``tenantops_meta`` in the tenant's database, or in schema mode in its
        schema: ``active_login``, ``active_secret``); None when the data does not exist yet
        or was never rotated."""
        if self._data_owner(resource) is None:
            return None
        table = _meta_table(resource.schema)
        with self.admin_connection(resource, dbname=resource.name) as db:
            present = db.execute("SELECT to_regclass(%s) IS NOT NULL",
                                 (f"{resource.schema or 'public'}.tenantops_meta",)).fetchone()
            if not (present and present[0]):
                return None
            rows = dict(db.execute(sql.SQL(
                "SELECT key, value FROM {} WHERE key IN ('active_login', 'active_secret')"
            ).format(table)).fetchall())
        if "active_login" not in rows or "active_secret" not in rows:
            return None
        return str(rows["active_login"]), str(rows["active_secret"])

    def _ensure_rotated(self, resource: Database, login: str, secret: str) -> Outcome:
        """``ensure`` of a rotated tenant's database: the owner stays (NOLOGIN, its password
        from its own secret), the active login is converged (enabled or not) instead."""
        owner_password = self.secrets.read(resource.secret)
        password = self.secrets.read(secret)
        enabled = resource.login_enabled
        owner_view = replace(resource, login_enabled=False)
        with self.admin_connection(resource) as admin:
            changed = self._ensure_login(admin, owner_view, owner_password)
            if resource.schema is None:
                changed = self._ensure_database(admin, resource) or changed
            else:
                changed = self._ensure_shared_database(admin, resource) or changed
            changed = self._ensure_member(admin, resource, login, password,
                                          enabled=enabled) or changed
            if not enabled:
                for name in (login, resource.login):
                    self._end_sessions(admin, replace(resource, login=name, secret=secret))
            host, port = admin.info.host, admin.info.port
        if resource.schema is not None:
            with self.admin_connection(resource, dbname=resource.name) as shared:
                changed = self._ensure_schema(shared, resource) or changed
                if not resource.empty:
                    changed = self._ensure_metadata(shared, resource) or changed
        outputs: dict[str, Any] = {
            "database": resource.name, "login": login, "secret": secret,
            "server": resource.server, "mode": resource.mode,
            "location": f"postgresql://{login}@{host}:{port}/{resource.name}",
            "login_enabled": enabled}
        if resource.schema is not None:
            outputs["schema"] = resource.schema
        return Ready(outputs, changed=changed)

    def _ensure_member(self, admin: psycopg.Connection[tuple[Any, ...]], resource: Database,
                       login: str, password: str, *, enabled: bool) -> bool:
        """Login ``login``: a member of the database's owner that acts as it (``SET ROLE``
        at sign-in, so what it makes belongs to the owner), with ``password``. In schema
        mode, the owner's schema is its search path in the pooled database too; it holds no
        right of its own there (CONNECT and the schema come from the owner)."""
        owner = sql.Identifier(resource.login)
        name = sql.Identifier(login)
        verifier = admin.pgconn.encrypt_password(
            password.encode(), login.encode(), b"scram-sha-256").decode()
        can_login = sql.SQL("LOGIN" if enabled else "NOLOGIN")
        limit = sql.Literal(self.connection_limit)
        role = self._role(admin, login)
        if role is None:
            self._run(admin, resource, sql.SQL(
                "CREATE ROLE {} {} NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION "
                "NOBYPASSRLS CONNECTION LIMIT {} PASSWORD {} IN ROLE {}"
            ).format(name, can_login, limit, sql.Literal(verifier), owner))
        else:
            if role["rolsuper"] or role["rolreplication"] or role["rolbypassrls"]:
                raise PermanentProviderError(
                    f"role {login!r} already exists with superuser, replication or bypassrls; "
                    "tenantops will not hand such a role to a tenant", resource=resource.key)
            self._refuse_other_ties(admin, resource, login)
            self._run(admin, resource, sql.SQL(
                "ALTER ROLE {} {} NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT {} "
                "PASSWORD {}").format(name, can_login, limit, sql.Literal(verifier)))
            self._run(admin, resource, sql.SQL("GRANT {} TO {}").format(owner, name))
        self._run(admin, resource, sql.SQL("ALTER ROLE {} SET role = {}").format(
            name, sql.Literal(resource.login)))
        if resource.schema is not None:
            self._run(admin, resource, sql.SQL(
                "ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
                name, sql.Identifier(resource.name), sql.Identifier(resource.schema)))
        return role is None or bool(role["rolcanlogin"]) != enabled

    def _refuse_other_ties(self, admin: Connection, resource: Database, login: str) -> None:
        """Refuse to hand the existing role ``login`` to the tenant as its second login when
        it is a member of a role other than the tenant's owner (the tenant's app would get
        that role's rights: another tenant's schema or database), or when a role other than
        the admin is a member of it (that role would get the tenant's data)."""
        rows = admin.execute(
            "SELECT 'member of', r.rolname FROM pg_auth_members m "
            "JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles l ON l.oid = m.member "
            "WHERE l.rolname = %(login)s AND r.rolname <> %(owner)s "
            "UNION ALL SELECT 'granted to', r.rolname FROM pg_auth_members m "
            "JOIN pg_roles r ON r.oid = m.member JOIN pg_roles l ON l.oid = m.roleid "
            "WHERE l.rolname = %(login)s AND r.rolname <> current_user ORDER BY 1, 2",
            {"login": login, "owner": resource.login}).fetchall()
        if rows:
            ties = ", ".join(f"{how} {name}" for how, name in rows)
            raise PermanentProviderError(
                f"role {login!r} already exists and is tied to other roles ({ties}); "
                "tenantops will not hand such a role to a tenant as its second login. Revoke "
                "those memberships or drop the role, then retry the run; the tenant keeps its "
                "login", resource=resource.key)

    def _switch_login(self, resource: DatabaseLogin) -> Outcome:
        """Make ``resource.login`` the tenant's login: set its password from its secret
        (the new version), prove it signs in and reaches the database as the owner, then
        record it as the active login. The previous login is not touched."""
        view = Database(resource.database, resource.owner, resource.secret,
                        server=resource.server, schema=resource.schema)
        password = self.secrets.read(resource.secret)
        if self._data_owner(view) is None:
            where = (f"database {resource.database!r}" if resource.schema is None else
                     f"schema {resource.schema!r} of the pooled database "
                     f"{resource.database!r}")
            raise PermanentProviderError(
                f"{where} does not exist; onboard the tenant first", resource=resource.key)
        with self.admin_connection(view) as admin:
            if resource.login == resource.owner:
                self._ensure_login(admin, view, password)
            else:
                self._ensure_member(admin, view, resource.login, password, enabled=True)
            host, port = admin.info.host, admin.info.port
        self._prove_login(view, resource.login, password)
        table = _meta_table(resource.schema)
        with self.admin_connection(view, dbname=resource.database) as db:
            self._run(db, view, sql.SQL("SET ROLE {}").format(sql.Identifier(resource.owner)))
            row = db.execute(sql.SQL("SELECT value FROM {} WHERE key = 'active_login'")
                             .format(table)).fetchone()
            switched = (row[0] if row else resource.owner) != resource.login
            if switched:
                db.execute(sql.SQL(
                    "INSERT INTO {} VALUES ('active_login', %s), "
                    "('active_secret', %s), ('switched_at', now()::text) ON CONFLICT (key) "
                    "DO UPDATE SET value = EXCLUDED.value").format(table),
                    (resource.login, resource.secret))
            self._run(db, view, sql.SQL("RESET ROLE"))
        outputs: dict[str, Any] = {
            "database": resource.database, "login": resource.login, "secret": resource.secret,
            "server": resource.server,
            "location": f"postgresql://{resource.login}@{host}:{port}/{resource.database}"}
        if resource.schema is not None:
            outputs["schema"] = resource.schema
        return Ready(outputs, changed=switched)

    def _prove_login(self, view: Database, login: str, password: str) -> None:
        try:
            conninfo = psycopg.conninfo.make_conninfo(
                self.server(view).admin_url, dbname=view.name, user=login, password=password,
                connect_timeout=math.ceil(self.connect_timeout))
            with psycopg.connect(conninfo, autocommit=True) as db:
                row = db.execute("SELECT current_user, current_schema(), "
                                 "(SELECT count(*) FROM tenantops_meta)").fetchone()
        except psycopg.Error as exc:
            raise PermanentProviderError(
                f"the new login {login!r} could not sign in to database {view.name!r} "
                f"({_first_line(exc)}); the previous login still works and stays enabled; "
                "fix the cause and retry the run", resource=f"login:{login}") from None
        if row is None or row[0] != view.login:
            raise PermanentProviderError(
                f"the new login {login!r} signs in as {row[0] if row else None!r}, not as the "
                f"database's owner {view.login!r}; the previous login stays enabled",
                resource=f"login:{login}")
        if view.schema is not None and row[1] != view.schema:
            raise PermanentProviderError(
                f"the new login {login!r} signs in to the pooled database {view.name!r} with "
                f"schema {row[1]!r} first on its search path, not the tenant's schema "
                f"{view.schema!r}; the previous login stays enabled", resource=f"login:{login}")

    def _retire_login(self, resource: RetiredLogin) -> Outcome:
        view = Database(resource.database, resource.login, "unused", server=resource.server,
                        schema=resource.schema)
        with self.admin_connection(view, dbname=resource.database) as db:
            rows = dict(db.execute(sql.SQL(
                "SELECT key, value FROM {} WHERE key IN ('active_login', 'switched_at')"
            ).format(_meta_table(resource.schema))).fetchall())
            if rows.get("active_login", "") == resource.login or "switched_at" not in rows:
                raise PermanentProviderError(
                    f"login {resource.login!r} is the login database {resource.database!r} "
                    "uses now (no switch is recorded); tenantops will not disable it",
                    resource=resource.key)
            waited = db.execute("SELECT extract(epoch FROM now() - %s::timestamptz)",
                                (rows["switched_at"],)).fetchone()
            role = self._role(db, resource.login)
            sessions_row = db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                (resource.login,)).fetchone()
        elapsed = float(waited[0]) if waited else 0.0
        sessions = int(sessions_row[0]) if sessions_row else 0
        if role is None or (not role["rolcanlogin"] and not sessions):
            return Ready({"login": resource.login, "disabled": True}, changed=False)
        limit = resource.max_grace_seconds + 600.0
        if elapsed < resource.min_grace_seconds:
            return Pending(
                f"the previous login {resource.login} keeps working until every consumer has "
                f"the new secret: {resource.min_grace_seconds - elapsed:.0f} s more "
                "(rotation.min_grace_seconds)",
                max(0.05, min(resource.min_grace_seconds - elapsed, resource.poll_seconds)),
                timeout_seconds=limit)
        if sessions and elapsed < resource.max_grace_seconds:
            return Pending(
                f"{sessions} sessions still use the previous login {resource.login}; it is "
                "disabled when they end, or after rotation.max_grace_seconds "
                f"({resource.max_grace_seconds - elapsed:.0f} s more)",
                resource.poll_seconds, timeout_seconds=limit)
        with self.admin_connection(view) as admin:
            self._run(admin, view, sql.SQL("ALTER ROLE {} NOLOGIN").format(
                sql.Identifier(resource.login)))
            self._end_sessions(admin, view)
        return Ready({"login": resource.login, "disabled": True,
                      "sessions_ended": sessions}, changed=True)

    # -- the tenant's own connection ----------------------------------------------------------

    def read_metadata(self, database: Database) -> dict[str, str]:
        password = self.secrets.read(database.secret)
        try:
            conninfo = psycopg.conninfo.make_conninfo(
                self.server(database).admin_url, dbname=database.name, user=database.login,
                password=password, connect_timeout=math.ceil(self.connect_timeout),
            )
            with psycopg.connect(conninfo, autocommit=True) as db:
                rows = db.execute("SELECT key, value FROM tenantops_meta").fetchall()
        except psycopg.Error as exc:
            if "is not permitted to log in" in str(exc):
                raise PermanentProviderError(
                    f"login {database.login!r} is not permitted to log in to database "
                    f"{database.name!r}: it is disabled (NOLOGIN), as while the tenant is "
                    "suspended", resource=database.key) from None
            raise self._translate(exc, "read", database) from None
        return {str(key): str(value) for key, value in rows}

    @contextmanager
    def connect(self, database: Database) -> Iterator[Connection]:
        """An admin connection in the tenant's database acting as its login (``SET ROLE``,
        so what it creates the tenant owns), its schema first on the search path; in a
        transaction committed when the block ends. A rotated tenant's connection acts as the
        owner of its data, as its active login does."""
        database = self._as_owner(database)
        with self.admin_connection(database, dbname=database.name, autocommit=False) as db:
            try:
                db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(database.login)))
                if database.schema is not None:
                    db.execute(sql.SQL("SET search_path = {}").format(
                        sql.Identifier(database.schema)))
            except psycopg.Error as exc:
                raise self._translate(exc, "connect", database) from None
            yield db

    # -- connections and the admin's work ------------------------------------------------------

    def admin_conninfo(self, resource: Database, *, dbname: str | None = None,
                       with_password: bool = True) -> str:
        """The admin role's conninfo for ``resource``'s server (in ``dbname``)."""
        server = self.server(resource)
        extra: dict[str, Any] = {"connect_timeout": math.ceil(self.connect_timeout),
                                 "application_name": "tenantops"}
        if dbname is not None:
            extra["dbname"] = dbname
        if with_password and server.password_source is not None:
            extra["password"] = server.password_source()
        elif with_password and server.admin_password is not None:
            extra["password"] = server.admin_password
        return psycopg.conninfo.make_conninfo(server.admin_url, **extra)

    @contextmanager
    def admin_connection(
        self, resource: Database, *, dbname: str | None = None, autocommit: bool = True,
    ) -> Iterator[Connection]:
        """A connection as the admin role to ``resource``'s server (``dbname``: another
        database than the URL's)."""
        try:
            connection = psycopg.connect(self.admin_conninfo(resource, dbname=dbname),
                                         autocommit=autocommit)
        except psycopg.Error as exc:
            raise self._connect_error(exc, resource) from None
        with connection:
            yield connection

    def _ensure_login(self, admin: Connection, resource: Database, password: str) -> bool:
        # INHERIT: the login's rights on its database's public schema come from the implicit
        # pg_database_owner membership, which a NOINHERIT role would not use. It is granted
        # no other role, so INHERIT gives it nothing else.
        login = sql.Identifier(resource.login)
        verifier = admin.pgconn.encrypt_password(
            password.encode(), resource.login.encode(), b"scram-sha-256"
        ).decode()
        limit = sql.Literal(self.connection_limit)
        can_login = sql.SQL("LOGIN" if resource.login_enabled else "NOLOGIN")
        role = self._role(admin, resource.login)
        changed = False
        if role is None:
            try:
                self._run(admin, resource, sql.SQL(
                    "CREATE ROLE {} {} NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT "
                    "NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {} PASSWORD {}"
                ).format(login, can_login, limit, sql.Literal(verifier)))
                changed = True
            except pg_errors.DuplicateObject:
                role = self._role(admin, resource.login)  # created meanwhile: converge it
        if role is not None:
            if role["rolsuper"] or role["rolreplication"] or role["rolbypassrls"]:
                raise PermanentProviderError(
                    f"role {resource.login!r} already exists with superuser, replication or "
                    "bypassrls; tenantops will not hand such a role to a tenant. Drop or rename "
                    "it, or choose another login name",
                    resource=resource.key,
                )
            wanted = {"rolcanlogin": resource.login_enabled, "rolcreatedb": False,
                      "rolcreaterole": False, "rolinherit": True,
                      "rolconnlimit": self.connection_limit}
            changed = changed or any(role[k] != v for k, v in wanted.items())
            # The password cannot be compared (only a superuser reads verifiers); set it.
            self._run(admin, resource, sql.SQL(
                "ALTER ROLE {} {} NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT {} "
                "PASSWORD {}"
            ).format(login, can_login, limit, sql.Literal(verifier)))
        member = admin.execute(
            "SELECT rolsuper OR pg_has_role(current_user, %s, 'MEMBER') "
            "FROM pg_roles WHERE rolname = current_user", (resource.login,),
        ).fetchone()
        if not (member and member[0]):
            self._run(admin, resource, sql.SQL("GRANT {} TO CURRENT_USER").format(login))
        return changed

    def _ensure_database(self, admin: Connection, resource: Database) -> bool:
        name, login = sql.Identifier(resource.name), sql.Identifier(resource.login)
        owner = self._database_owner(admin, resource.name)
        changed = False
        if owner is None:
            try:
                self._run(admin, resource, sql.SQL(
                    "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'"
                ).format(name, login))
                owner, changed = resource.login, True
            except pg_errors.DuplicateDatabase:
                owner = self._database_owner(admin, resource.name)
        if owner != resource.login:
            self._run(admin, resource,
                      sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, login))
            changed = True
        # Owners keep their rights; everyone else loses CONNECT and TEMPORARY.
        self._run(admin, resource,
                  sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        return changed

    def _ensure_shared_database(self, admin: Connection, resource: Database) -> bool:
        """The pooled database (the admin's), and CONNECT on it for this tenant's login."""
        name, login = sql.Identifier(resource.name), sql.Identifier(resource.login)
        changed = False
        if self._database_owner(admin, resource.name) is None:
            try:
                self._run(admin, resource, sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(name))
                changed = True
            except pg_errors.DuplicateDatabase:
                pass  # another tenant's step made it meanwhile
        self._run(admin, resource,
                  sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        self._run(admin, resource, sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            name, login))
        return changed

    def _ensure_schema(self, shared: Connection, resource: Database) -> bool:
        """The tenant's schema in the pooled database, owned by its login and first (alone)
        on its search path there."""
        if resource.schema is None:
            return False
        schema, login = sql.Identifier(resource.schema), sql.Identifier(resource.login)
        self._run(shared, resource, sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
        owner = self._schema_owner(shared, resource.schema)
        changed = False
        if owner is None and not resource.empty:
            try:
                self._run(shared, resource, sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}")
                          .format(schema, login))
                owner, changed = resource.login, True
            except pg_errors.DuplicateSchema:
                owner = self._schema_owner(shared, resource.schema)
        if owner is not None and owner != resource.login:
            self._run(shared, resource, sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(
                schema, login))
            changed = True
        self._run(shared, resource, sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}")
                  .format(login, sql.Identifier(resource.name), schema))
        return changed

    def _ensure_metadata(self, tenant_db: Connection, resource: Database) -> bool:
        # Objects are made as the login, so the login owns everything in its database (or
        # schema). A login dropped by hand (REASSIGN OWNED, DROP ROLE) left tenantops' table
        # to another role: a reconcile gives it back (the tenant app's own tables are the
        # app's).
        where = f"{resource.schema or 'public'}.tenantops_meta"
        owner = tenant_db.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)",
            (where,)).fetchone()
        if owner is not None and owner[0] is not None and owner[0] != resource.login:
            self._run(tenant_db, resource, sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                sql.Identifier(resource.schema or "public", "tenantops_meta"),
                sql.Identifier(resource.login)))
        self._run(tenant_db, resource,
                  sql.SQL("SET ROLE {}").format(sql.Identifier(resource.login)))
        if resource.schema is None:
            self._run(tenant_db, resource, sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
            table = sql.Identifier("tenantops_meta")
        else:
            table = sql.Identifier(resource.schema, "tenantops_meta")
        self._run(tenant_db, resource, sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)"
        ).format(table))
        cursor = tenant_db.execute(
            sql.SQL("INSERT INTO {} VALUES ('database', %s), ('created_at', %s) "
                    "ON CONFLICT (key) DO NOTHING").format(table),
            (resource.name, dt.datetime.now(dt.timezone.utc).isoformat()),
        )
        self._run(tenant_db, resource, sql.SQL("RESET ROLE"))
        return cursor.rowcount > 0

    def _role(self, admin: Connection, login: str) -> dict[str, Any] | None:
        cursor = admin.execute(
            "SELECT rolsuper, rolreplication, rolbypassrls, rolcanlogin, rolcreatedb, "
            "rolcreaterole, rolinherit, rolconnlimit FROM pg_roles WHERE rolname = %s", (login,),
        )
        row = cursor.fetchone()
        if row is None or cursor.description is None:
            return None
        return {column.name: value for column, value in zip(cursor.description, row, strict=True)}

    def _database_owner(self, admin: Connection, name: str) -> str | None:
        row = admin.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _schema_owner(self, connection: Connection, name: str) -> str | None:
        row = connection.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (name,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _run(
        self, connection: Connection, resource: Database,
        statement: sql.SQL | sql.Composed,
    ) -> None:
        try:
            connection.execute(statement)
        except (pg_errors.DuplicateObject, pg_errors.DuplicateDatabase,
                pg_errors.DuplicateSchema):
            raise
        except psycopg.Error as exc:
            raise self._translate(exc, "run", resource) from None

    def _translate(
        self, exc: psycopg.Error, doing: str, resource: Database
    ) -> PermanentProviderError | TransientProviderError:
        """A psycopg error as a provider error; the message never holds the statement (which
        may carry a password verifier), only the server's own text and SQLSTATE."""
        state = exc.sqlstate or ""
        text = _first_line(exc)
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return PermanentProviderError(
                f"the admin role was refused ({state}: {text}) while working on database "
                f"{resource.name!r} and login {resource.login!r}; it needs CREATEDB and "
                "CREATEROLE (see docs/providers.md)",
                resource=resource.key,
            )
        if isinstance(exc, pg_errors.DependentObjectsStillExist):
            return PermanentProviderError(
                f"login {resource.login!r} still owns or holds privileges on objects outside "
                f"database {resource.name!r} ({text}); reassign or drop them, then retry",
                resource=resource.key,
            )
        if isinstance(exc, psycopg.OperationalError) or state[:2] in _TRANSIENT_SQLSTATE_CLASSES \
                or state in _TRANSIENT_SQLSTATES:
            return TransientProviderError(
                f"PostgreSQL failed while working on database {resource.name!r} "
                f"({state or 'no SQLSTATE'}: {text}); will retry",
                resource=resource.key,
            )
        return PermanentProviderError(
            f"PostgreSQL refused work on database {resource.name!r} and login "
            f"{resource.login!r} ({state or 'no SQLSTATE'}: {text})",
            resource=resource.key,
        )

    def _connect_error(
        self, exc: psycopg.Error, resource: Database
    ) -> PermanentProviderError | TransientProviderError:
        text = _first_line(exc)
        answered = "FATAL:" in str(exc)
        where = f"server {resource.server!r}"
        if "no password supplied" in str(exc):
            return PermanentProviderError(
                f"PostgreSQL ({where}) asks for the admin role's password and none was given; "
                "set admin_password in [providers.database.postgres] (or its "
                "providers.database.servers entry), or PGPASSWORD or ~/.pgpass",
                resource=resource.key)
        if answered and not any(t in str(exc) for t in _TRANSIENT_CONNECT_TEXT):
            return PermanentProviderError(
                f"PostgreSQL ({where}) refused the admin connection ({text}); check the admin "
                "URL, role and password in [providers.database.postgres] (or its "
                "providers.database.servers entry)",
                resource=resource.key,
            )
        return TransientProviderError(
            f"could not connect to PostgreSQL ({where}: {text}); will retry",
            resource=resource.key
        )


def _meta_table(schema: str | None) -> sql.Identifier:
    """``tenantops_meta`` of the tenant: in its database's public schema, or its own schema."""
    return sql.Identifier(schema or "public", "tenantops_meta")


def alternate_login(login: str) -> str:
    """The other of a tenant's two logins: ``acme_app`` <-> ``acme_app_b``."""
    return login[:-2] if login.endswith("_app_b") else f"{login}_b"


def _first_line(exc: psycopg.Error) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    return message.removeprefix("connection failed: ")

