"""The store: SQLAlchemy models, engine setup and migrations."""
