"""The operator commands `create_org` and `create_api_key`."""

import pytest
from django.core.management import CommandError

from quotas.authentication import authenticate_key
from quotas.models import ApiKey, Organization, Tier
from tests.factories import KEY_PATTERN, run_command


@pytest.mark.django_db
def test_create_org(tiers):
    lines = run_command("create_org", "acme", "--tier", "enterprise", "--name", "Acme Inc", "--owner-email", "ops@acme.test")
    assert lines[-1] == "acme"
    organization = Organization.objects.get(slug="acme")
    assert organization.name == "Acme Inc"
    assert organization.tier.name == "enterprise"
    assert organization.owner_email == "ops@acme.test"


@pytest.mark.django_db
def test_create_org_on_an_operator_defined_tier(tiers):
    Tier.objects.create(name="research", daily_limit=50, concurrent_limit=2)
    assert run_command("create_org", "lab", "--tier", "research")[-1] == "lab"
    assert Organization.objects.get(slug="lab").name == "lab"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args,complaint",
    [
        (["acme", "--tier", "gold"], "unknown tier 'gold' (existing tiers: enterprise, free, pro)"),
        (["Not A Slug", "--tier", "free"], "slug:"),
        (["acme2", "--tier", "free", "--owner-email", "not-an-email"], "owner_email:"),
    ],
)
def test_create_org_refuses_bad_input(tiers, args, complaint):
    with pytest.raises(CommandError) as caught:
        run_command("create_org", *args)
    assert complaint in str(caught.value)


@pytest.mark.django_db
def test_create_org_refuses_an_existing_slug(org):
    with pytest.raises(CommandError, match="organization 'acme' already exists"):
        run_command("create_org", "acme", "--tier", "free")


@pytest.mark.django_db
def test_create_api_key_prints_the_key_and_stores_only_its_hash(org):
    key = run_command("create_api_key", org.slug, "--name", "ci")[-1]
    assert KEY_PATTERN.fullmatch(key)
    record = ApiKey.objects.get()
    assert (record.organization, record.name, record.is_staff) == (org, "ci", False)
    secret = key.split("_", 2)[2]
    assert secret not in record.hashed_secret and record.matches(secret)
    assert authenticate_key(key).api_key == record

    *said, staff_key = run_command("create_api_key", org.slug, "--staff")
    assert authenticate_key(staff_key).is_staff
    assert said[0].startswith("Issued operator (staff) API key ")


@pytest.mark.django_db
def test_create_api_key_for_an_unknown_organization(tiers):
    with pytest.raises(CommandError, match="no organization 'ghost'"):
        run_command("create_api_key", "ghost")
