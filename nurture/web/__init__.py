"""`nurture serve`: the signup form, confirmation, unsubscribe and the SendGrid webhook.

`create_app(app)` builds the Starlette app; `serve(app, host=, port=)` runs it with uvicorn.
"""

from nurture.web.site import create_app, serve

__all__ = ["create_app", "serve"]
