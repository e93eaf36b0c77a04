from rest_framework.permissions import BasePermission


class IsOperator(BasePermission):
    """Operator endpoints: a staff API key or token, or a staff user's admin session."""

    message = "this endpoint is for operators: use a staff API key or a staff admin session"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
