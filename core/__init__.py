"""The shared base every app builds on: the partner-scoped API base, database and chart helpers.

It imports no app of the project (the import-linter contract in pyproject.toml keeps it so).
"""
