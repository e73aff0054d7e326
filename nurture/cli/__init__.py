"""The `nurture` command: a thin shell over the Python API."""
