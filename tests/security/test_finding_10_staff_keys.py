"""Finding 10 (API keys): a staff user allowed to add and change API keys in
the admin, but no superuser, must not mint a staff key nor bring a revoked
key back. The admin's forms are POSTed as such a user would, with the
fields they do not show."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from quotas.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_clerk():
    """A staff user with every API-key permission, but not a superuser."""
    user = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="quotas", codename__endswith="_apikey")
    )
    client = Client()
    client.force_login(user)
    return client


def change(client, key, **fields):
    form = {"name": key.name, "revoked_at_0": "", "revoked_at_1": "", **fields}
    return client.post(reverse("admin:quotas_apikey_change", args=[key.pk]), form)


def test_a_clerk_cannot_mint_a_staff_key(key_clerk, org):
    page = key_clerk.get(reverse("admin:quotas_apikey_add")).content.decode()
    assert 'name="is_staff"' not in page

    add = {"organization": org.pk, "name": "ci", "is_staff": "on"}
    response = key_clerk.post(reverse("admin:quotas_apikey_add"), add)
    assert response.status_code == 302, response.content
    minted = ApiKey.objects.get(name="ci")
    assert minted.is_staff is False

    key, _ = ApiKey.issue(org, name="worker")
    assert change(key_clerk, key, is_staff="on").status_code == 302
    key.refresh_from_db()
    assert key.is_staff is False


def test_a_clerk_can_revoke_a_key_but_only_a_superuser_can_bring_it_back(key_clerk, admin_client, org):
    key, _ = ApiKey.issue(org, name="leaked")
    key_clerk.post(reverse("admin:quotas_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.is_revoked
    revoked_at = key.revoked_at
    page = key_clerk.get(reverse("admin:quotas_apikey_change", args=[key.pk])).content.decode()
    assert 'name="revoked_at_0"' not in page and 'name="is_staff"' not in page

    assert change(key_clerk, key, name="renamed").status_code == 302
    key.refresh_from_db()
    # What the clerk may change is saved; the revocation stays.
    assert (key.name, key.revoked_at) == ("renamed", revoked_at)

    assert change(admin_client, key, is_staff="on").status_code == 302
    key.refresh_from_db()
    assert key.is_staff is True and not key.is_revoked
