"""A client generated from openapi/openapi.json (openapi-python-client)
against a running Tollgate: what an admin who generates a client from the
document relies on, with typed answers.

Run by tests/client/run, which generates the package `tollgate_client` onto
PYTHONPATH, starts the mock provider and `tollgate serve`, and passes:
  TOLLGATE_URL          e.g. http://127.0.0.1:8080
  TOLLGATE_ADMIN_TOKEN  the platform-admin bearer token

The checks run in order and share state; the last line printed is
"N passed, N failed", and the exit status is 1 when anything failed.
"""

import json
import os
import sys
import traceback
import urllib.request

from tollgate_client import AuthenticatedClient, Client
from tollgate_client.api.api_keys import create_api_key, list_api_keys
from tollgate_client.api.credits_ import get_credits, grant_credits
from tollgate_client.api.organizations import create_organization, get_organization
from tollgate_client.api.provider_credentials import create_provider_credential, list_provider_credentials
from tollgate_client.api.usage import list_usage
from tollgate_client.api.users import create_user, login
from tollgate_client.models import (
    BillingMode,
    CreateApiKey,
    CreateCredential,
    CreateOrganization,
    CreateUser,
    CreatedApiKey,
    Credential,
    Credits,
    ErrorResponse,
    Grant,
    GrantResult,
    Login,
    Organization,
    PageApiKey,
    PageCredential,
    Role,
    Token,
    Unit,
    UnitPageUsageRecord,
    UsageRecord,
)

URL = os.environ["TOLLGATE_URL"].rstrip("/")
ADMIN_TOKEN = os.environ["TOLLGATE_ADMIN_TOKEN"]
MODEL = "gpt-4o-mini"
GRANT = 1_000_000  # micro-dollars
PASSWORD = "correct horse battery staple"

admin = AuthenticatedClient(base_url=URL, token=ADMIN_TOKEN, raise_on_unexpected_status=True)
state = {}


def typed(value, cls, what):
    assert isinstance(value, cls), f"{what}: expected {cls.__name__}, got {type(value).__name__}: {value!r}"
    return value


def check_an_organization_is_created_and_read_back():
    created = typed(
        create_organization.sync(client=admin, body=CreateOrganization(name="Generated", billing_mode=BillingMode.USD)),
        Organization,
        "create_organization",
    )
    assert created.id.startswith("org_"), created.id
    assert created.billing_mode == BillingMode.USD
    assert isinstance(created.created_at, int)
    read = typed(get_organization.sync(created.id, client=admin), Organization, "get_organization")
    assert read.name == "Generated"
    state["org"] = created.id


def check_an_api_key_is_created_and_listed_without_its_secret():
    key = typed(
        create_api_key.sync(state["org"], client=admin, body=CreateApiKey(name="generated")),
        CreatedApiKey,
        "create_api_key",
    )
    assert key.key.startswith("tg-"), "the secret starts with tg-"
    listed = typed(list_api_keys.sync(state["org"], client=admin), PageApiKey, "list_api_keys")
    assert [k.id for k in listed.data] == [key.id]
    assert "key" not in listed.data[0].to_dict(), "a listed key carries no secret"
    state["key"], state["key_id"] = key.key, key.id


def check_a_provider_credential_is_stored_and_listed_with_its_hint():
    created = typed(
        create_provider_credential.sync(
            client=admin,
            body=CreateCredential(
                organization_id=state["org"], provider="mock", api_key="sk-generated-9876", credential_name="main"
            ),
        ),
        Credential,
        "create_provider_credential",
    )
    assert created.key_hint == "9876", created.key_hint
    assert "sk-generated-9876" not in json.dumps(created.to_dict())
    page = typed(
        list_provider_credentials.sync(client=admin, organization_id=state["org"]),
        PageCredential,
        "list_provider_credentials",
    )
    assert [c.id for c in page.data] == [created.id]


def check_credits_are_granted_and_read():
    granted = typed(
        grant_credits.sync(state["org"], client=admin, body=Grant(amount=GRANT, idempotency_key="gen-1")),
        GrantResult,
        "grant_credits",
    )
    assert granted.balance == GRANT and granted.unit == Unit.USD_MICROS
    credits = typed(get_credits.sync(state["org"], client=admin), Credits, "get_credits")
    assert credits.balance == GRANT and credits.reserved == 0


def check_a_chat_call_is_read_back_as_typed_usage():
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}]}).encode()
    req = urllib.request.Request(URL + "/v1/chat/completions", data=body, method="POST")
    req.add_header("Authorization", f"Bearer {state['key']}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        request_id = resp.headers["x-tollgate-request-id"]
        cost = int(resp.headers["x-tollgate-cost"])

    page = typed(list_usage.sync(state["org"], client=admin), UnitPageUsageRecord, "list_usage")

    assert len(page.data) == 1, page.data
    record = typed(page.data[0], UsageRecord, "usage record")
    assert record.request_id == request_id
    assert record.model == MODEL and record.provider == "mock"
    assert record.api_key_id == state["key_id"]
    assert record.prompt_tokens > 0 and record.completion_tokens > 0
    # The organization's own credential paid the provider; with no BYOK fee
    # set, nothing is deducted, though the call had a list price.
    assert record.byok is True
    assert record.cost == cost == 0 and record.list_cost_usd_micros > 0
    assert page.has_more is False and page.next_cursor is None
    credits = typed(get_credits.sync(state["org"], client=admin), Credits, "get_credits")
    assert credits.balance == GRANT - cost


def check_a_user_signs_in_and_reads_usage_with_the_jwt():
    create_user.sync(
        client=admin,
        body=CreateUser(email="member@example.com", password=PASSWORD, role=Role.ORG_MEMBER, organization_id=state["org"]),
    )
    token = typed(
        login.sync(client=Client(base_url=URL), body=Login(email="member@example.com", password=PASSWORD)),
        Token,
        "login",
    )
    member = AuthenticatedClient(base_url=URL, token=token.access_token)
    page = typed(list_usage.sync(state["org"], client=member), UnitPageUsageRecord, "list_usage as member")
    assert len(page.data) == 1


def check_errors_are_typed_error_responses():
    member = AuthenticatedClient(base_url=URL, token="not-a-token")
    error = typed(get_organization.sync(state["org"], client=member), ErrorResponse, "401")
    assert error.error.type_ == "authentication_error", error.error
    missing = typed(get_organization.sync("org_missing", client=admin), ErrorResponse, "404")
    assert missing.error.code == "not_found", missing.error


def main():
    checks = [v for k, v in globals().items() if k.startswith("check_")]
    passed = failed = 0
    for check in checks:
        try:
            check()
            passed += 1
            print(f"ok      {check.__name__}")
        except Exception:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAILED  {check.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
