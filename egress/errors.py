"""Egress errors: refusals (:class:`EgressDenied`) and network failures
(:class:`EgressFailed`).

Messages name at most the host; resolved addresses and OS error details are
never put in them.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["EgressDenied", "EgressError", "EgressFailed"]


class EgressError(Exception):
    """Base class.  ``code`` is a short machine-readable reason."""

    code = "egress_error"

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class EgressDenied(EgressError):
    """The request violates the egress policy (maps to SANDBOX_VIOLATION).

    Codes: invalid_url, scheme_not_allowed, port_not_allowed,
    domain_not_allowed, ip_literal_not_allowed, forbidden_address,
    method_not_allowed, invalid_header, invalid_body, request_too_large,
    response_too_large, too_many_redirects; rate_limited when the caller's
    ``before_send`` refuses (see :func:`egress.fetch`).
    """

    code = "denied"


class EgressFailed(EgressError):
    """The request was allowed but the network operation failed.

    Codes: dns_failure, timeout, connect_failed, tls_error, protocol_error,
    network_error.
    """

    code = "failed"
