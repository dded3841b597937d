"""OAuth credential sets (``CreateOAuthCredential`` and family) over the admin
API and the command line, and what a secret reset or a deletion does at the
token endpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from sso_middleware.oauth import OAuthCredential
from sso_middleware.sealing import MAC_BYTES, RecordSealer
from sso_middleware.stores import Stores
from tests.support.helpers import (
    API_PATH,
    SECRET_KEY,
    TOKEN_PATH,
    api_form,
    browser,
)

IDENTIFIER = re.compile(r"^[0-9a-f]{32}$")
SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")
CREDENTIAL_KEYS = b"sso:v2:{credentials}:"


# -- helpers ---------------------------------------------------------------------


def api(app, action: str, status: int = 200, **fields: str) -> dict:
    """Call one admin API action with valid credentials; return its JSON."""
    response = app.post(API_PATH, api_form(action=action, **fields), status=status)
    assert response.content_type == "application/json"
    return json.loads(response.body)


def create(app, **fields: str) -> dict:
    body = api(app, "CreateOAuthCredential", **{"grantType": "single_sign_on", "serviceId": "101", **fields})
    assert body["result"] == "success", body
    return body


def listed(app) -> list[dict]:
    body = api(app, "ListOAuthCredentials")
    assert body["result"] == "success"
    assert body["totalresults"] == len(body["clients"])
    return body["clients"]


def token_request(
    app, client_id: str, client_secret: str, status: int, scope: str = "clientarea:sso clientarea:invoices"
) -> dict:
    response = app.post(
        TOKEN_PATH,
        {
            "grant_type": "single_sign_on",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        },
        status=status,
    )
    return json.loads(response.body)


def events(caplog, name: str) -> list:
    return [r for r in caplog.records if getattr(r, "sso_event", None) == name]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sso_middleware", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            **os.environ,
            "SSO_SECRET_KEYS": SECRET_KEY,
            "SSO_USER_STORE": "sso_middleware.demo:demo_user_store",
        },
    )


def redis_dump(redis_client) -> bytes:
    keys = list(redis_client.scan_iter(count=1000))
    return b" ".join(keys + [redis_client.dump(k) or b"" for k in keys])


# -- CreateOAuthCredential --------------------------------------------------------


def test_create_returns_id_identifier_and_secret(app, caplog):
    body = create(app, scope="clientarea:invoices", name="cPanel", description="service 101")
    assert set(body) == {"result", "credentialId", "clientIdentifier", "clientSecret"}
    assert type(body["credentialId"]) is int and body["credentialId"] > 0
    assert IDENTIFIER.match(body["clientIdentifier"])
    assert SECRET.match(body["clientSecret"])
    [record] = events(caplog, "credential_created")
    assert record.sso_credential_id == body["credentialId"]
    assert record.sso_client_id == 1


def test_each_credential_gets_its_own_id_identifier_and_secret(app):
    first, second = create(app), create(app)
    assert first["credentialId"] != second["credentialId"]
    assert first["clientIdentifier"] != second["clientIdentifier"]
    assert first["clientSecret"] != second["clientSecret"]


def test_created_credential_works_at_the_token_endpoint(app):
    body = create(app, scope="clientarea:invoices")
    result = token_request(app, body["clientIdentifier"], body["clientSecret"], 200)
    assert result["token_type"] == "Bearer"
    assert result["scope"] == "clientarea:sso clientarea:invoices"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"grantType": None}, "A valid grant type is required.", id="no-grant-type"),
        pytest.param({"grantType": ""}, "A valid grant type is required.", id="empty-grant-type"),
        pytest.param(
            {"grantType": "client_credentials"}, "A valid grant type is required.", id="unknown-grant-type"
        ),
        pytest.param(
            {"grantType": "authorization_code"},
            "The authorization_code grant type is not supported: this middleware serves only single_sign_on",
            id="authorization-code",
        ),
        pytest.param(
            {"serviceId": None},
            "A service ID is required for the single sign-on grant type.",
            id="no-service",
        ),
        pytest.param(
            {"serviceId": ""},
            "A service ID is required for the single sign-on grant type.",
            id="empty-service",
        ),
        pytest.param(
            {"serviceId": "999"}, "Service ID not associated with valid Client.", id="unknown-service"
        ),
        pytest.param({"serviceId": "abc"}, "Invalid serviceId", id="non-numeric-service"),
        pytest.param(
            {"scope": "clientarea:bogus"},
            'The requested scope "clientarea:bogus" is invalid.',
            id="bogus-scope",
        ),
        pytest.param(
            {"scope": "clientarea:invoices clientarea:bogus"},
            'The requested scope "clientarea:bogus" is invalid.',
            id="one-bogus-scope",
        ),
        pytest.param(
            {"scope": "sso:custom_redirect"},
            'The requested scope "sso:custom_redirect" is invalid.',
            id="custom-redirect",
        ),
    ],
)
def test_create_errors_are_200_with_the_whmcs_message(app, redis_client, caplog, fields, message):
    request = {"grantType": "single_sign_on", "serviceId": "101", "scope": "clientarea:invoices", **fields}
    request = {k: v for k, v in request.items() if v is not None}
    body = api(app, "CreateOAuthCredential", status=200, **request)
    assert body == {"result": "error", "message": message}
    assert listed(app) == []
    assert events(caplog, "credential_created") == []


@pytest.mark.parametrize(
    ("scope", "stored"),
    [
        pytest.param("", "clientarea:sso", id="none"),
        pytest.param("clientarea:invoices", "clientarea:sso clientarea:invoices", id="one"),
        pytest.param(
            "clientarea:invoices clientarea:sso", "clientarea:sso clientarea:invoices", id="marker-last"
        ),
        pytest.param(
            "clientarea:services  clientarea:invoices clientarea:services",
            "clientarea:sso clientarea:services clientarea:invoices",
            id="duplicates",
        ),
    ],
)
def test_stored_scope_starts_with_the_marker_scope(app, scope, stored):
    body = create(app, scope=scope)
    [shown] = listed(app)
    assert shown["credentialId"] == body["credentialId"]
    assert shown["scope"] == stored


# -- ListOAuthCredentials -----------------------------------------------------------


def test_list_shows_every_set_without_secret_or_hash(app):
    assert api(app, "ListOAuthCredentials") == {"result": "success", "totalresults": 0, "clients": []}
    first = create(app, scope="clientarea:invoices", name="cPanel", description="service 101")
    second = create(app, serviceId="201", scope="clientarea:services")
    response = app.post(API_PATH, api_form(action="ListOAuthCredentials"), status=200)
    body = json.loads(response.body)
    assert body["totalresults"] == 2
    assert body["clients"] == [
        {
            "credentialId": first["credentialId"],
            "clientIdentifier": first["clientIdentifier"],
            "name": "cPanel",
            "description": "service 101",
            "grantTypes": "single_sign_on",
            "scope": "clientarea:sso clientarea:invoices",
            "serviceId": 101,
            "clientId": 1,
        },
        {
            "credentialId": second["credentialId"],
            "clientIdentifier": second["clientIdentifier"],
            "name": "",
            "description": "",
            "grantTypes": "single_sign_on",
            "scope": "clientarea:sso clientarea:services",
            "serviceId": 201,
            "clientId": 2,
        },
    ]
    for secret in (first["clientSecret"], second["clientSecret"]):
        assert secret not in response.text
    assert "sha256:" not in response.text
    assert "secret" not in response.text.lower()


# -- UpdateOAuthCredential ------------------------------------------------------------


def test_update_changes_name_description_and_scope(app, caplog):
    body = create(app, scope="clientarea:invoices", name="old", description="old text")
    updated = api(
        app,
        "UpdateOAuthCredential",
        credentialId=str(body["credentialId"]),
        name="new",
        description="new text",
        scope="clientarea:services",
    )
    assert updated == {
        "result": "success",
        "credentialId": body["credentialId"],
        "clientIdentifier": body["clientIdentifier"],
    }
    [shown] = listed(app)
    assert (shown["name"], shown["description"], shown["scope"]) == (
        "new",
        "new text",
        "clientarea:sso clientarea:services",
    )
    # the new scope is what the token endpoint allows now; the secret is unchanged
    token_request(
        app, body["clientIdentifier"], body["clientSecret"], 200, scope="clientarea:sso clientarea:services"
    )
    refused = token_request(app, body["clientIdentifier"], body["clientSecret"], 400)
    assert refused["error"] == "invalid_scope"
    assert events(caplog, "credential_reset") == []


def test_update_without_changes_keeps_everything(app):
    body = create(app, scope="clientarea:invoices", name="keep")
    before = listed(app)
    api(app, "UpdateOAuthCredential", credentialId=str(body["credentialId"]))
    assert listed(app) == before
    token_request(app, body["clientIdentifier"], body["clientSecret"], 200)


def test_update_with_a_bad_scope_changes_nothing(app):
    body = create(app, scope="clientarea:invoices", name="keep")
    before = listed(app)
    refused = api(
        app,
        "UpdateOAuthCredential",
        status=200,
        credentialId=str(body["credentialId"]),
        name="changed",
        scope="clientarea:bogus",
    )
    assert refused == {"result": "error", "message": 'The requested scope "clientarea:bogus" is invalid.'}
    assert listed(app) == before


def test_reset_secret_invalidates_the_old_secret_at_once(app, caplog):
    body = create(app, scope="clientarea:invoices")
    old = body["clientSecret"]
    token_request(app, body["clientIdentifier"], old, 200)
    reset = api(app, "UpdateOAuthCredential", credentialId=str(body["credentialId"]), resetSecret="true")
    assert reset["result"] == "success"
    assert reset["credentialId"] == body["credentialId"]
    assert reset["clientIdentifier"] == body["clientIdentifier"]
    new = reset["clientSecret"]
    assert SECRET.match(new) and new != old
    refused = token_request(app, body["clientIdentifier"], old, 401)
    assert refused["error"] == "invalid_client"
    assert token_request(app, body["clientIdentifier"], new, 200)["access_token"]
    [record] = events(caplog, "credential_reset")
    assert record.sso_credential_id == body["credentialId"]


def test_reset_secret_maybe_is_200_with_an_error_and_keeps_the_secret(app, caplog):
    body = create(app, scope="clientarea:invoices")
    refused = api(
        app, "UpdateOAuthCredential", status=200, credentialId=str(body["credentialId"]), resetSecret="maybe"
    )
    assert refused == {"result": "error", "message": "resetSecret must be true or false"}
    token_request(app, body["clientIdentifier"], body["clientSecret"], 200)
    assert events(caplog, "credential_reset") == []


@pytest.mark.parametrize("action", ["UpdateOAuthCredential", "DeleteOAuthCredential"])
@pytest.mark.parametrize("credential_id", ["999", "abc", "", None])
def test_unknown_credential_id(app, action, credential_id):
    create(app)
    fields = {} if credential_id is None else {"credentialId": credential_id}
    body = api(app, action, status=200, **fields)
    assert body == {"result": "error", "message": "Invalid credentialId"}
    assert len(listed(app)) == 1


# -- DeleteOAuthCredential ---------------------------------------------------------


def test_delete_makes_the_secret_useless(app, caplog):
    body = create(app, scope="clientarea:invoices")
    other = create(app, scope="clientarea:invoices")
    token_request(app, body["clientIdentifier"], body["clientSecret"], 200)
    deleted = api(app, "DeleteOAuthCredential", credentialId=str(body["credentialId"]))
    assert deleted == {"result": "success", "credentialId": body["credentialId"]}
    refused = token_request(app, body["clientIdentifier"], body["clientSecret"], 401)
    assert refused["error"] == "invalid_client"
    assert [c["credentialId"] for c in listed(app)] == [other["credentialId"]]
    token_request(app, other["clientIdentifier"], other["clientSecret"], 200)
    again = api(app, "DeleteOAuthCredential", status=200, credentialId=str(body["credentialId"]))
    assert again == {"result": "error", "message": "Invalid credentialId"}
    [record] = events(caplog, "credential_deleted")
    assert record.sso_credential_id == body["credentialId"]


def test_credential_actions_need_api_credentials(app):
    body = create(app, scope="clientarea:invoices")
    for action, fields in (
        ("CreateOAuthCredential", {"grantType": "single_sign_on", "serviceId": "101"}),
        ("ListOAuthCredentials", {}),
        ("UpdateOAuthCredential", {"credentialId": str(body["credentialId"]), "resetSecret": "true"}),
        ("DeleteOAuthCredential", {"credentialId": str(body["credentialId"])}),
    ):
        response = app.post(API_PATH, api_form(action=action, secret="wrong", **fields), status=403)
        assert json.loads(response.body) == {"result": "error", "message": "Authentication Failed"}
    assert len(listed(app)) == 1
    token_request(app, body["clientIdentifier"], body["clientSecret"], 200)


class DeletedDuringUpdate:
    """A credential store where, once armed, a ``DeleteOAuthCredential``
    from another process lands between an update's read and its write."""

    def __init__(self, store):
        self.store = store
        self.armed = False

    def find(self, credential_id):
        record = self.store.find(credential_id)
        if self.armed and record is not None:
            self.armed = False
            self.store.delete(credential_id, OAuthCredential.decode(record[:-MAC_BYTES]).identifier)
        return record

    def next_id(self):
        return self.store.next_id()

    def add(self, credential_id, identifier, record):
        return self.store.add(credential_id, identifier, record)

    def replace(self, identifier, record, previous):
        return self.store.replace(identifier, record, previous)

    def get(self, identifier):
        return self.store.get(identifier)

    def all(self):
        return self.store.all()

    def delete(self, credential_id, identifier):
        self.store.delete(credential_id, identifier)


# An update is a read-modify-write; a delete between the read and the write
# must not be undone.
@pytest.mark.parametrize(
    "fields",
    [pytest.param({"resetSecret": "true"}, id="reset"), pytest.param({"name": "renamed"}, id="rename")],
)
def test_update_racing_a_delete_does_not_resurrect_the_credential(make_middleware, redis_client, fields):
    store = DeletedDuringUpdate(Stores.redis(redis_client).credentials)
    app = browser(make_middleware(credentials=store))
    body = create(app, scope="clientarea:invoices")
    store.armed = True
    answer = api(app, "UpdateOAuthCredential", status="*", credentialId=str(body["credentialId"]), **fields)
    assert not store.armed, "the concurrent delete did not happen"
    # the set was deleted: it must stay deleted, and no secret of it may work
    for secret in (body["clientSecret"], answer.get("clientSecret")):
        if secret is not None:
            refused = token_request(app, body["clientIdentifier"], secret, 401)
            assert refused["error"] == "invalid_client"
    assert listed(app) == []


# -- Redis and logs ----------------------------------------------------------------


def test_redis_holds_no_secret_and_credentials_are_durable(app, redis_client, caplog):
    body = create(app, scope="clientarea:invoices")
    reset = api(app, "UpdateOAuthCredential", credentialId=str(body["credentialId"]), resetSecret="true")
    kept = create(app, serviceId="201")
    dump = redis_dump(redis_client)
    for secret in (body["clientSecret"], reset["clientSecret"], kept["clientSecret"]):
        assert secret.encode() not in dump
    keys = list(redis_client.scan_iter(match=b"sso:v2:{credentials}:*"))
    assert keys, "no credential keys under sso:v2:{credentials}:"
    for key in keys:
        assert redis_client.ttl(key) == -1, key
    # the credentials are nowhere else
    identifiers = [body["clientIdentifier"].encode(), kept["clientIdentifier"].encode()]
    for key in redis_client.scan_iter(count=1000):
        if not key.startswith(CREDENTIAL_KEYS):
            assert not any(i in (redis_client.dump(key) or b"") for i in identifiers), key

    api(app, "DeleteOAuthCredential", credentialId=str(body["credentialId"]))
    assert body["clientIdentifier"].encode() not in redis_dump(redis_client)

    names = [getattr(r, "sso_event", None) for r in caplog.records]
    for event in ("credential_created", "credential_reset", "credential_deleted"):
        assert event in names, event
    text = "\n".join(r.getMessage() + repr(vars(r)) for r in caplog.records)
    for secret in (body["clientSecret"], reset["clientSecret"], kept["clientSecret"]):
        assert secret not in text


def test_failed_client_authentication_is_logged_without_the_secret(app, caplog):
    body = create(app, scope="clientarea:invoices")
    token_request(app, body["clientIdentifier"], "wrong-" + body["clientSecret"], 401)
    [record] = events(caplog, "client_auth_failed")
    assert body["clientSecret"] not in record.getMessage() + repr(vars(record))


# -- the command line -----------------------------------------------------------------


def test_cli_create_list_reset_delete(redis_server, redis_client):
    url = redis_server.url
    created = cli(
        "credentials",
        "create",
        "--redis-url",
        url,
        "--service-id",
        "101",
        "--scope",
        "clientarea:invoices",
        "--name",
        "cPanel",
    )
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert list(body) == ["result", "credentialId", "clientIdentifier", "clientSecret"]
    secret = body["clientSecret"]
    assert SECRET.match(secret)
    assert IDENTIFIER.match(body["clientIdentifier"])
    assert secret not in created.stderr

    shown = cli("credentials", "list", "--redis-url", url)
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    assert (listed["result"], listed["totalresults"]) == ("success", 1)
    [entry] = listed["clients"]
    assert entry["credentialId"] == body["credentialId"]
    assert entry["clientIdentifier"] == body["clientIdentifier"]
    assert entry["scope"] == "clientarea:sso clientarea:invoices"
    assert (entry["serviceId"], entry["clientId"], entry["name"]) == (101, 1, "cPanel")
    assert secret not in shown.stdout and "sha256:" not in shown.stdout
    assert "clientSecret" not in shown.stdout

    credential_id = str(body["credentialId"])
    reset = cli("credentials", "reset-secret", "--redis-url", url, "--credential-id", credential_id)
    assert reset.returncode == 0, reset.stderr
    new_secret = json.loads(reset.stdout)["clientSecret"]
    assert SECRET.match(new_secret) and new_secret != secret
    assert new_secret not in reset.stderr

    dump = redis_dump(redis_client)
    assert secret.encode() not in dump and new_secret.encode() not in dump

    deleted = cli("credentials", "delete", "--redis-url", url, "--credential-id", credential_id)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout)["credentialId"] == body["credentialId"]
    assert json.loads(cli("credentials", "list", "--redis-url", url).stdout)["clients"] == []


def test_cli_credentials_work_at_the_token_endpoint(redis_server, app):
    # app's middleware shares the Redis the CLI writes to
    created = cli(
        "credentials",
        "create",
        "--redis-url",
        redis_server.url,
        "--service-id",
        "101",
        "--scope",
        "clientarea:invoices",
    )
    body = json.loads(created.stdout)
    token_request(app, body["clientIdentifier"], body["clientSecret"], 200)
    reset = cli(
        "credentials",
        "reset-secret",
        "--redis-url",
        redis_server.url,
        "--credential-id",
        str(body["credentialId"]),
    )
    new_secret = json.loads(reset.stdout)["clientSecret"]
    assert (
        token_request(app, body["clientIdentifier"], body["clientSecret"], 401)["error"] == "invalid_client"
    )
    token_request(app, body["clientIdentifier"], new_secret, 200)
    cli(
        "credentials", "delete", "--redis-url", redis_server.url, "--credential-id", str(body["credentialId"])
    )
    assert token_request(app, body["clientIdentifier"], new_secret, 401)["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["create", "--service-id", "999"],
            "Service ID not associated with valid Client.",
            id="unknown-service",
        ),
        pytest.param(
            ["create", "--service-id", "101", "--scope", "clientarea:bogus"],
            'The requested scope "clientarea:bogus" is invalid.',
            id="bad-scope",
        ),
        pytest.param(["reset-secret", "--credential-id", "999"], "Invalid credentialId", id="reset-unknown"),
        pytest.param(["delete", "--credential-id", "999"], "Invalid credentialId", id="delete-unknown"),
    ],
)
def test_cli_errors_exit_1_with_the_whmcs_message(redis_server, redis_client, args, message):
    action, *rest = args
    result = cli("credentials", action, "--redis-url", redis_server.url, *rest)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"result": "error", "message": message}
    assert "Traceback" not in result.stderr
    assert list(redis_client.hvals(b"sso:v2:{credentials}:by-identifier")) == []


class ResetDuringUpdate(DeletedDuringUpdate):
    """Once armed, a secret reset from another process lands between an
    update's read and its write."""

    def __init__(self, store, manager_factory):
        super().__init__(store)
        self.manager_factory = manager_factory
        self.new_secret = None

    def find(self, credential_id):
        record = self.store.find(credential_id)
        if self.armed and record is not None:
            self.armed = False
            _, self.new_secret = self.manager_factory(self.store).update(credential_id, reset_secret=True)
        return record


def test_an_update_never_undoes_a_concurrent_secret_reset(make_middleware, redis_client, user_store):
    from sso_middleware.destinations import Destinations
    from sso_middleware.oauth import CredentialManager

    sealer = RecordSealer([SECRET_KEY])
    store = ResetDuringUpdate(
        Stores.redis(redis_client).credentials,
        lambda inner: CredentialManager(inner, user_store, Destinations(), sealer),
    )
    app = browser(make_middleware(credentials=store))
    body = create(app, scope="clientarea:invoices")
    store.armed = True
    api(app, "UpdateOAuthCredential", credentialId=str(body["credentialId"]), name="renamed")
    assert store.new_secret is not None, "the concurrent reset did not happen"
    # the reset holds: the old secret stays dead, the new one works, and the rename applied
    grant_status = {
        secret: app.post(
            TOKEN_PATH,
            {
                "grant_type": "single_sign_on",
                "scope": "clientarea:sso",
                "client_id": body["clientIdentifier"],
                "client_secret": secret,
            },
            status="*",
        ).status_int
        for secret in (body["clientSecret"], store.new_secret)
    }
    assert grant_status == {body["clientSecret"]: 401, store.new_secret: 200}
    listed = api(app, "ListOAuthCredentials")["clients"]
    assert [c["name"] for c in listed] == ["renamed"]


def old_release_store(redis_client, *credentials):
    """Credential sets stored as a release before sealing stored them."""
    from sso_middleware.stores.redis import RedisCredentialStore

    old = RedisCredentialStore(redis_client, prefix="sso:v1:")
    for credential in credentials:
        old.add(credential.credential_id, credential.identifier, credential.encode())
    return old


def old_set(credential_id, identifier, secret):
    from sso_middleware.credentials import hash_secret

    return OAuthCredential(
        credential_id, identifier, hash_secret(secret), ("clientarea:sso", "clientarea:invoices"), 1, 101
    )


def import_sets(redis_server, *extra):
    result = cli("credentials", "import", "--from-prefix", "sso:v1:", "--redis-url", redis_server.url, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_sets_of_a_release_that_kept_them_unsealed_are_imported_sealed(
    redis_server, redis_client, make_middleware
):
    """Upgrading from ``sso:v1:``: the durable credential sets are listed
    for review, then copied across, sealed; their identifiers and secrets
    keep working."""
    kept = old_set(1, "c" * 32, "old-secret")
    old_release_store(redis_client, kept)
    app = browser(make_middleware())
    existing = create(app, scope="clientarea:invoices")  # made on the new release first: id 1 is taken
    token = {
        "grant_type": "single_sign_on",
        "scope": "clientarea:sso",
        "client_id": kept.identifier,
        "client_secret": "old-secret",
    }

    listed, advice = import_sets(redis_server)  # a dry run: review first
    assert listed["applied"] is False and "--apply" in advice
    assert [c["clientIdentifier"] for c in listed["credentials"]] == [kept.identifier]
    app.post(TOKEN_PATH, token, status=401)  # nothing written

    applied, _ = import_sets(redis_server, "--apply")
    [imported] = applied["credentials"]
    assert imported["previousCredentialId"] == 1 and imported["credentialId"] != existing["credentialId"]
    app.post(TOKEN_PATH, token, status=200)
    assert import_sets(redis_server, "--apply")[0]["credentials"] == []  # nothing twice
    # both sets can still be managed by their own ids
    for credential_id in (existing["credentialId"], imported["credentialId"]):
        api(app, "DeleteOAuthCredential", credentialId=str(credential_id))
    assert listed_ids(app) == []


def listed_ids(app):
    return [c["credentialId"] for c in api(app, "ListOAuthCredentials")["clients"]]


def test_an_import_takes_only_the_sets_named_and_skips_unreadable_records(
    redis_server, redis_client, make_middleware
):
    wanted, planted = old_set(3, "a" * 32, "s1"), old_set(10**12, "b" * 32, "s2")
    old = old_release_store(redis_client, wanted, planted)
    redis_client.hset(old.by_identifier, "d" * 32, b"not json")
    redis_client.hset(old.by_identifier, "e" * 32, b'{"credential_id": "7"}')
    applied, _ = import_sets(redis_server, "--apply", "--only", wanted.identifier)
    assert [c["clientIdentifier"] for c in applied["credentials"]] == [wanted.identifier]
    assert applied["unreadable"] == 2
    app = browser(make_middleware())
    assert len(listed_ids(app)) == 1  # the admin API still answers


def test_a_planted_copy_of_an_old_set_imports_neither(redis_server, redis_client, make_middleware):
    """A Redis writer adds a second record claiming a real set's identifier,
    with a secret of their own: which one the import would take is up to
    the order Redis lists them in, so it takes neither."""
    real, planted = old_set(1, "c" * 32, "real-secret"), old_set(2, "c" * 32, "attacker-secret")
    old = old_release_store(redis_client, real)
    redis_client.hset(old.by_identifier, "f" * 32, planted.encode())
    applied, _ = import_sets(redis_server, "--apply", "--only", real.identifier)
    assert applied["credentials"] == [] and applied["unreadable"] == 2
    token = {"grant_type": "single_sign_on", "scope": "clientarea:sso", "client_id": real.identifier}
    app = browser(make_middleware())
    for secret in ("real-secret", "attacker-secret"):
        app.post(TOKEN_PATH, {**token, "client_secret": secret}, status=401)


def test_an_import_can_trust_none_of_the_old_secrets(redis_server, redis_client, make_middleware):
    kept = old_set(1, "c" * 32, "old-secret")
    old_release_store(redis_client, kept)
    applied, _ = import_sets(redis_server, "--apply", "--reset-secrets")
    [imported] = applied["credentials"]
    token = {"grant_type": "single_sign_on", "scope": "clientarea:sso", "client_id": kept.identifier}
    app = browser(make_middleware())
    app.post(TOKEN_PATH, {**token, "client_secret": "old-secret"}, status=401)
    app.post(TOKEN_PATH, {**token, "client_secret": imported["clientSecret"]}, status=200)


def test_a_reset_id_counter_never_makes_two_sets_share_an_id(make_middleware, redis_client):
    """A Redis writer sets the id counter back: the next set skips the ids
    already taken, so deleting by id deletes the set listed under it."""
    app = browser(make_middleware())
    first = create(app, scope="clientarea:invoices", name="panel A")
    redis_client.set("sso:v2:{credentials}:last-id", 0)
    second = create(app, scope="clientarea:invoices", name="panel B")
    assert second["credentialId"] != first["credentialId"]
    api(app, "DeleteOAuthCredential", credentialId=str(first["credentialId"]))
    assert [c["name"] for c in api(app, "ListOAuthCredentials")["clients"]] == ["panel B"]
    app.post(
        TOKEN_PATH,
        {
            "grant_type": "single_sign_on",
            "scope": "clientarea:sso",
            "client_id": first["clientIdentifier"],
            "client_secret": first["clientSecret"],
        },
        status=401,
    )
