"""The store: SQLAlchemy Core schema, Alembic migrations and one module per table.

Open it with `tenanttls.store.db.open_store`. Repository functions take a
`Connection`, so a caller can make several changes in one transaction (the relay
switch changes the assignment and the upgrade state together).
"""
