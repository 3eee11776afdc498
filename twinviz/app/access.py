"""Who may start and stop training processes from the app: the one home of that decision.

The Training tab starts processes on the machine that serves the app. By default only a
visitor *on that machine* may do so: the decision is taken on the server, from the address
of the client that opened the session (the HTTP request Bokeh keeps for it), not from
anything the browser sends — an ``Origin`` header or a disabled button do not stop a
non-browser client, this check does (the tab re-checks it in its launch and cancel handlers).

=====================================  =====================================================
where the session comes from           launching and cancelling runs
=====================================  =====================================================
no server (a notebook, a script)       allowed: the code runs as its user already
a loopback address (127.0.0.0/8, ::1)  allowed
any other address                      refused, unless ``TWINVIZ_ALLOW_REMOTE_TRAINING=1``
a session without a known address      refused (fail closed)
=====================================  =====================================================

Behind a reverse proxy on the same machine every client *looks* local: start Bokeh with
``--use-xheaders`` so the address is the proxy's ``X-Real-Ip`` / ``X-Forwarded-For``, and put
authentication in front (docs/app.md, "Exposing the app").
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

__all__ = ["ALLOW_REMOTE_ENV", "Access", "allow_remote_from_env", "decide", "is_loopback", "session_client",
           "training_access"]

ALLOW_REMOTE_ENV = "TWINVIZ_ALLOW_REMOTE_TRAINING"
_TRUE = ("1", "true", "yes", "on")
NOT_SERVED = object()  # session_client()'s answer outside a server session


@dataclass(frozen=True)
class Access:
    """The decision for one session: ``allowed``, the ``client`` address it was taken for
    (None when unknown or not served) and, when refused, the ``reason`` a user reads."""

    allowed: bool
    client: str | None
    reason: str = ""


def is_loopback(address) -> bool:
    """Whether ``address`` (text) is a loopback IP address (IPv4-mapped IPv6 included)."""
    try:
        ip = ipaddress.ip_address(str(address).strip().split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def allow_remote_from_env(environ=None) -> bool:
    """Whether ``TWINVIZ_ALLOW_REMOTE_TRAINING`` opts in to remote launches (1/true/yes/on)."""
    value = (os.environ if environ is None else environ).get(ALLOW_REMOTE_ENV, "")
    return value.strip().lower() in _TRUE


def decide(client, allow_remote: bool) -> Access:
    """The decision for a session whose client address is ``client`` (``NOT_SERVED`` outside a
    server session; None when the server does not know it)."""
    if client is NOT_SERVED:
        return Access(True, None)
    if client and is_loopback(client):
        return Access(True, str(client))
    if client and allow_remote:
        return Access(True, str(client))
    where = f"from {client}" if client else "from an unknown address"
    return Access(False, str(client) if client else None, (
        f"Launching and cancelling runs is limited to visitors on the machine that runs the app; "
        f"this page is open {where}. You can still follow the runs and open them in the explorer. "
        f"Fix: open the app on that machine (for example through an SSH tunnel: "
        f"ssh -L 5006:localhost:5006 HOST), or start the server with {ALLOW_REMOTE_ENV}=1 behind "
        f"authentication (docs/app.md, \"Exposing the app\")."))


def session_client():
    """The address of the client of the current server session (its HTTP request's
    ``remote_ip``), None when the session has no request, ``NOT_SERVED`` outside a server."""
    import panel as pn

    doc = pn.state.curdoc
    context = getattr(doc, "session_context", None) if doc is not None else None
    if context is None:
        return NOT_SERVED
    request = getattr(context, "request", None)
    address = getattr(request, "remote_ip", None) if request is not None else None
    return str(address) if address else None


def training_access(allow_remote: bool | None = None) -> Access:
    """The decision for the current session; ``allow_remote`` None reads the environment."""
    if allow_remote is None:
        allow_remote = allow_remote_from_env()
    return decide(session_client(), allow_remote)
