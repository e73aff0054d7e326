"""Where the console lives and the name of its forms' CSRF field: read by the guard
(access.py) and by the pages (render.py), which must not import each other."""

PREFIX = "/console"
CSRF_FIELD = "csrf_token"
