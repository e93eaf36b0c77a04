"""Tenant isolation: what one organization can and cannot do to another through shared state."""
