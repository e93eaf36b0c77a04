"""Host-side egress broker for sandboxed plugin executions.

Sandboxed plugin code has no network access of its own.  Its only way out is
``ctx.http.get/post/request``, which forwards ``(method, url, headers, body)``
to the host.  This package decides whether such a request is allowed and, if
so, performs it.  It is deliberately pure Python (stdlib only, no Django, no
project apps) so it can be tested on its own; rate limiting and event logging
are layered around :func:`fetch` by the caller
(``executions/egress_gateway.py``).

Modules (each imports only the ones listed before it):

* ``errors`` -- :class:`EgressError`, :class:`EgressDenied`, :class:`EgressFailed`.
* ``addresses`` -- :func:`is_forbidden_address`.
* ``hosts`` -- :func:`parse_ip_literal`, hostname normalisation and IDNA,
  :func:`normalize_domain_entry`.
* ``policy`` -- :class:`EgressPolicy`, :func:`default_resolver`.
* ``urls`` -- :class:`TargetURL`, :func:`check_url`.
* ``request`` -- method, header and body checks (:data:`ALLOWED_METHODS`).
* ``connection`` -- :class:`PinnedHTTPConnection` /
  :class:`PinnedHTTPSConnection`, the default TLS context, the watchdog.
* ``fetch`` -- :class:`EgressResponse`, :func:`fetch` (DNS checks, caps,
  deadline, redirects), :func:`resolve_url` (its checks without connecting).

Security model (per hop, including every redirect hop):

1. The URL is parsed strictly (``urls``): only ``http``/``https``; no
   userinfo, backslashes, control characters, percent-encoded hosts or
   malformed ports.  The host is lower-cased, IDNA-encoded and stripped of a
   trailing dot.  Every inet_aton/WHATWG spelling of an IP address (decimal,
   octal, hex, short, full-width, bracketed IPv6 with zone ids or embedded
   IPv4) is recognised as an IP literal (``hosts``) and never matched by the
   domain allowlist; a host that merely *looks* numeric but is not a valid
   address (``1.2.3.4.5``, ``4294967296``) is refused as invalid.
2. The host must match :attr:`EgressPolicy.allowed_domains` (exact names or
   ``*.example.com`` wildcards that match subdomains only).
3. The port must be the scheme default, 80 or 443 (any port only with
   ``allow_any_port=True``).
4. DNS is resolved on the host with the policy's resolver.  If ANY returned
   address is forbidden (``addresses``) the request is refused, which defeats
   rebinding tricks that mix public and private answers.
5. The connection is made to the exact address that was checked
   (``connection``); there is no second resolution.  The Host header, TLS SNI
   and certificate verification use the hostname.
6. Request headers are sanitised (Host is ours; hop-by-hop and Proxy-* headers
   are dropped; count/size limits), methods are restricted, the request body
   and the response body are capped, and a single wall-clock budget
   (``timeout_seconds``) covers DNS, connect, TLS, the request, all
   redirects and the response body (a watchdog aborts trickling servers).
7. A redirect to another origin (scheme, host or port) carries none of the
   caller's headers, since any of them may be a credential.

Errors: :class:`EgressDenied` is a policy refusal (including a response body
larger than the cap; the engine maps it to SANDBOX_VIOLATION);
:class:`EgressFailed` is a network failure (DNS, connect, timeout, TLS,
malformed/incomplete response).  Both carry a machine-readable ``code`` and a
message that names at most the host; resolved addresses and OS error details
are never put in messages.  Only ``str(exc)`` / ``exc.code`` should be
forwarded to plugin code; the ``__cause__`` chain is kept for host-side
diagnostics.
"""

from .addresses import is_forbidden_address
from .connection import PinnedHTTPConnection, PinnedHTTPSConnection
from .errors import EgressDenied, EgressError, EgressFailed
from .fetch import EgressResponse, fetch, resolve_url
from .hosts import normalize_domain_entry, parse_ip_literal
from .policy import EgressPolicy, default_resolver
from .request import ALLOWED_METHODS
from .urls import TargetURL, check_url

__all__ = [
    "ALLOWED_METHODS",
    "EgressDenied",
    "EgressError",
    "EgressFailed",
    "EgressPolicy",
    "EgressResponse",
    "PinnedHTTPConnection",
    "PinnedHTTPSConnection",
    "TargetURL",
    "check_url",
    "default_resolver",
    "fetch",
    "is_forbidden_address",
    "normalize_domain_entry",
    "parse_ip_literal",
    "resolve_url",
]
