"""GET /events: the audit log, an organization's own or (operators) all,
filtered and paginated by cursor."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from audit.events import record_event
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

EXECUTED = AuditEvent.Type.PLUGIN_ACTION_EXECUTED
QUOTA = AuditEvent.Type.QUOTA_EXCEEDED


@pytest.fixture
def log(org, make_org):
    """Events of two organizations, an hour apart from each other, newest last."""
    other = make_org("globex")
    now = timezone.now()
    specs = [
        (org, EXECUTED, "alice", "text-tools"),
        (org, EXECUTED, "bob", "stats"),
        (org, QUOTA, "alice", "text-tools"),
        (other, EXECUTED, "carol", "text-tools"),
        (org, EXECUTED, "alice", "json-tools"),
    ]
    events = []
    for hours_ago, (organization, event_type, actor, target) in zip(range(len(specs), 0, -1), specs):
        event = record_event(event_type, organization=organization, actor_id=actor, target_id=target,
                             metadata={"n": len(events)})
        AuditEvent.objects.filter(pk=event.pk).update(timestamp=now - dt.timedelta(hours=hours_ago))
        events.append(event)
    return events


def ids(response):
    assert response.status_code == 200, response.json()
    return [event["id"] for event in response.json()["results"]]


def test_an_organization_reads_its_own_events_newest_first(api, log):
    body = api.get("/events").json()
    assert [e["id"] for e in body["results"]] == [log[4].pk, log[2].pk, log[1].pk, log[0].pk]
    newest = body["results"][0]
    assert newest == {
        "id": log[4].pk, "type": "plugin_action_executed", "organizationId": "acme", "actorId": "alice",
        "targetId": "json-tools", "timestamp": newest["timestamp"], "metadata": {"n": 4},
    }
    assert body["next"] is None and body["previous"] is None


def test_an_organization_cannot_ask_for_another_organizations_events(api, log):
    response = api.get("/events", {"organizationId": "globex"})
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "PERMISSION_DENIED"
    assert ids(api.get("/events", {"organizationId": "acme"})) == [log[4].pk, log[2].pk, log[1].pk, log[0].pk]


def test_operators_read_every_organizations_events(org, make_client, log):
    operator = make_client(org, staff=True)
    assert ids(operator.get("/events")) == [e.pk for e in reversed(log)]
    assert ids(operator.get("/events", {"organizationId": "globex"})) == [log[3].pk]
    session = APIClient()
    auditor = get_user_model().objects.create_user("operator", password="x", is_staff=True)
    # Staff status alone is not enough (tests/security/test_finding_10_staff_permissions.py).
    auditor.user_permissions.add(Permission.objects.get(content_type__app_label="audit", codename="view_auditevent"))
    session.force_login(auditor)
    assert ids(session.get("/events")) == [e.pk for e in reversed(log)]


def test_filters_by_type_target_actor_and_time(api, log):
    assert ids(api.get("/events", {"type": "quota_exceeded"})) == [log[2].pk]
    assert ids(api.get("/events", {"type": "quota_exceeded,plugin_action_executed", "actorId": "alice"})) == [
        log[4].pk, log[2].pk, log[0].pk,
    ]
    assert ids(api.get("/events?type=quota_exceeded&type=plugin_action_executed&targetId=text-tools")) == [
        log[2].pk, log[0].pk,
    ]
    # log[1] is 4 h old, log[2] 3 h: since is inclusive, until exclusive.
    since, until = log[1], log[2]
    since_at = AuditEvent.objects.get(pk=since.pk).timestamp
    until_at = AuditEvent.objects.get(pk=until.pk).timestamp
    assert ids(api.get("/events", {"since": since_at.isoformat(), "until": until_at.isoformat()})) == [log[1].pk]
    assert ids(api.get("/events", {"since": until_at.isoformat()})) == [log[4].pk, log[2].pk]
    # A window that ends before it starts holds no events.
    assert ids(api.get("/events", {"since": until_at.isoformat(), "until": since_at.isoformat()})) == []


def test_pages_follow_the_cursor(api, org):
    for n in range(7):
        record_event(EXECUTED, organization=org, target_id="text-tools", metadata={"n": n})
    seen, url, pages = [], "/events?limit=3", 0
    while url:
        body = api.get(url).json()
        seen += [event["metadata"]["n"] for event in body["results"]]
        url, pages = body["next"], pages + 1
    assert seen == [6, 5, 4, 3, 2, 1, 0] and pages == 3


@pytest.mark.parametrize(
    "query, field",
    [({"since": "yesterday"}, "since"), ({"type": "nonsense"}, "type"), ({"limit": "x"}, "limit"),
     ({"limit": "0"}, "limit"), ({"limit": "-3"}, "limit")],
)
def test_bad_filters_are_validation_errors(api, query, field):
    response = api.get("/events", query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "VALIDATION_ERROR" and error["details"][0]["field"] == field


def test_an_unknown_type_is_told_the_types_there_are(api):
    error = api.get("/events", {"type": "quota_exceeded,quota_exceded"}).json()["error"]
    assert error["details"] == [{"field": "type", "message": "not an event type"}]
    message = error["message"]
    assert message.startswith("'quota_exceded' is not an event type; the types are ")
    assert all(event_type in message for event_type in AuditEvent.Type.values)


def test_a_cursor_the_endpoint_did_not_give_out_is_a_validation_error(api):
    response = api.get("/events", {"cursor": "x"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "VALIDATION_ERROR" and error["details"][0]["field"] == "cursor"


def test_events_need_credentials():
    response = APIClient().get("/events")
    assert response.status_code == 401 and response.json()["error"]["type"] == "AUTHENTICATION_FAILED"
