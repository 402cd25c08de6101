"""PostgreSQL: connection, migrations, named queries and the functions every state change goes through."""

from torc_hpc.db.repo import Attempt, Database

__all__ = ["Attempt", "Database"]
