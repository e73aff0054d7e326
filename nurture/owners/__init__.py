"""The people who may use the owner console: accounts, sessions, login throttling, audit."""
