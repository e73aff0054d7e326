"""`nurture serve`: the web endpoints subscribers and SendGrid talk to."""

from __future__ import annotations

import click

from nurture.cli.base import Context, pass_context


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host in config.yaml).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to listen on (default: web.port in config.yaml).",
)
@pass_context
def serve(obj: Context, host: str | None, port: int | None) -> None:
    """Serve the signup form, confirmation and unsubscribe pages, and the SendGrid webhook.

    Run it behind a TLS reverse proxy on the same machine, reachable at
    web.public_base_url. Exposes only /subscribe, /confirm/..., /unsubscribe/...
    (with RFC 8058 one-click), /webhooks/sendgrid, /webhooks/booking, /healthz and the
    owner console under /console/ (off until `nurture owner add`). Stops on Ctrl-C or SIGTERM.

    \b
    Example:
      NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY=MFkw... nurture serve --host 127.0.0.1 --port 8000
    """
    # Deferred, a heavy import: Starlette, uvicorn and the site take ~300 ms, which no other command needs.
    from nurture.web import serve as run_server

    config = obj.config
    app = obj.app
    listen_host = host or config.web.host
    listen_port = port or config.web.port
    click.echo(
        f"nurture serve: http://{listen_host}:{listen_port} (public "
        f"address {config.web.public_base_url}); Ctrl-C to stop"
    )
    run_server(app, host=listen_host, port=listen_port)


def register(cli: click.Group) -> None:
    cli.add_command(serve)
