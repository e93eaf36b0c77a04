from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings


class IsOperator(BasePermission):
    """Operator endpoints: a staff API key or token, or a staff user's admin session."""

    message = "this endpoint is for operators: use a staff API key or a staff admin session"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


def api_key_or_session():
    """Authentication for endpoints operators read both from scripts (an API
    key, the project's default authentication) and from the admin (a session)."""
    return [*api_settings.DEFAULT_AUTHENTICATION_CLASSES, SessionAuthentication]
