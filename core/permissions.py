from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings


class IsOperator(BasePermission):
    """Operator endpoints: a staff API key or token, or a staff user's admin session."""

    message = "this endpoint is for operators: use a staff API key or a staff admin session"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class SessionHoldsPermission(BasePermission):
    """An admin session reads what its user holds the view's
    `session_permission` for: being staff lets a user into the admin, not into
    every organization's data. API keys and tokens are scoped by their
    organization and staff flag instead."""

    def has_permission(self, request, view):
        if not isinstance(request.successful_authenticator, SessionAuthentication):
            return True
        if request.user.has_perm(view.session_permission):
            return True
        self.message = f"this admin user lacks the {view.session_permission} permission this endpoint needs"
        return False


def api_key_or_session():
    """Authentication for endpoints operators read both from scripts (an API
    key, the project's default authentication) and from the admin (a session)."""
    return [*api_settings.DEFAULT_AUTHENTICATION_CLASSES, SessionAuthentication]
