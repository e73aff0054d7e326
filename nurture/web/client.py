"""What we take from the client: its IP address and its user agent, each bounded.

Client IP: the socket peer. Behind a reverse proxy on the same machine, uvicorn's
proxy headers support (`proxy_headers=True`, `forwarded_allow_ips="127.0.0.1"`,
set by `nurture.web.site.server_config`) takes the address from X-Forwarded-For,
trusting it only when the request comes from 127.0.0.1.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

MAX_IP_LENGTH = 45  # the longest IPv6 text; the consent record's column


def client_ip(request: Request) -> str | None:
    """The client's IP address, written canonically, or None if what we were told is not one
    (X-Forwarded-For is whatever the client sent before the proxy appended to it)."""
    if not request.client:
        return None
    try:
        text = str(ipaddress.ip_address(request.client.host))
    except ValueError:
        return None
    return text if len(text) <= MAX_IP_LENGTH else None  # an IPv6 zone ("%eth0") can be any length


def user_agent(request: Request) -> str | None:
    return (request.headers.get("user-agent") or "")[:400] or None
