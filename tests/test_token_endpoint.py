"""The OAuth token endpoint: single_sign_on grant, client authentication, scopes."""

from __future__ import annotations

import base64
import dataclasses
import json
from urllib.parse import quote_plus

import pytest
import redis

from sso_middleware.credentials import hash_secret
from sso_middleware.oauth import CredentialChanged
from sso_middleware.stores import Stores
from sso_middleware.stores.memory import MemoryTokenStore
from sso_middleware.stores.redis import RedisCredentialStore, RedisTokenStore, connect
from sso_middleware.users import AccountStatus
from tests.support.helpers import SSO_PATH, SYSTEM_URL, TOKEN_PATH, browser, sso_path
from tests.support.redis_server import free_port

SCOPE = "clientarea:sso clientarea:invoices"


def basic(identifier, secret):
    raw = f"{quote_plus(identifier)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def credential(middleware):
    """A credential set bound to service 101 (client 1): (identifier, secret)."""
    created, secret = middleware.oauth_credentials.create(
        grant_type="single_sign_on", scope="clientarea:invoices clientarea:product_details", service_id=101
    )
    return created.identifier, secret


def grant(app, params=None, headers=None, status=200, **kwargs):
    params = {"grant_type": "single_sign_on", "scope": SCOPE, **(params or {})}
    return app.post(
        TOKEN_PATH,
        {k: v for k, v in params.items() if v is not None},
        headers=headers or {},
        status=status,
        **kwargs,
    )


def error_of(response):
    return response.json["error"]


def test_basic_authentication_issues_a_token(app, credential):
    response = grant(app, headers=basic(*credential))
    body = response.json
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "redirect_url"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 60
    assert body["scope"] == SCOPE
    assert body["redirect_url"] == f"{SYSTEM_URL}{SSO_PATH}?access_token={body['access_token']}"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.content_type == "application/json"


def test_body_authentication_issues_a_token(app, credential):
    identifier, secret = credential
    grant(app, {"client_id": identifier, "client_secret": secret})


@pytest.mark.parametrize("secret", ["pa:ss%word", "a b+c&d=é", "::%%"])
def test_secrets_with_reserved_characters(app, middleware, secret):
    created, _ = middleware.oauth_credentials.create(grant_type="single_sign_on", service_id=101)
    custom = dataclasses.replace(created, secret_hash=hash_secret(secret))
    seal = middleware.oauth_credentials.seal
    assert middleware.oauth_credentials.store.replace(custom.identifier, seal(custom), seal(created))
    grant(app, {"scope": "clientarea:sso"}, headers=basic(custom.identifier, secret))
    grant(app, {"scope": "clientarea:sso", "client_id": custom.identifier, "client_secret": secret})


def test_the_token_signs_in_the_accounts_owner_and_works_once(app, credential):
    body = grant(app, {"user_id": "3", "client_id": None}, headers=basic(*credential)).json
    response = app.get(sso_path(body["redirect_url"]), status=303)
    assert response.headers["Location"] == SYSTEM_URL + "/clientarea.php?action=invoices"
    assert json.loads(app.get("/").body)["identity"] == [1, 1]
    browser(app.app).get(sso_path(body["redirect_url"]), status=403)


def test_scope_sent_to_the_sso_endpoint_must_agree(app, credential):
    body = grant(app, headers=basic(*credential)).json
    app.get(sso_path(body["redirect_url"]), {"scope": SCOPE}, status=303)
    body = grant(app, headers=basic(*credential)).json
    app.get(sso_path(body["redirect_url"]), {"scope": "clientarea:sso clientarea:profile"}, status=403)


def test_service_id_falls_back_to_the_bound_service(app, credential):
    body = grant(app, {"scope": "clientarea:sso clientarea:product_details"}, headers=basic(*credential)).json
    response = app.get(sso_path(body["redirect_url"]), status=303)
    assert response.headers["Location"].endswith("action=productdetails&id=101")


def test_a_credential_cannot_reach_another_account(app, credential):
    response = grant(
        app,
        {"scope": "clientarea:sso clientarea:product_details", "service_id": "201"},
        headers=basic(*credential),
        status=400,
    )
    assert response.json == {"error": "invalid_request", "error_description": "Invalid service_id for client"}


@pytest.mark.parametrize(
    "scope, description",
    [
        ("clientarea:sso clientarea:profile", 'The requested scope "clientarea:profile" is invalid.'),
        ("clientarea:invoices", "scope must include clientarea:sso"),
        ("", "scope must include clientarea:sso"),
        ("clientarea:sso sso:custom_redirect", 'The requested scope "sso:custom_redirect" is invalid.'),
        (
            "clientarea:sso clientarea:invoices clientarea:product_details",
            "scope names more than one destination",
        ),
    ],
)
def test_scopes_outside_the_credential_are_refused(app, credential, scope, description):
    response = grant(app, {"scope": scope}, headers=basic(*credential), status=400)
    assert response.json == {"error": "invalid_scope", "error_description": description}


def test_home_needs_only_the_marker_scope(app, credential):
    body = grant(app, {"scope": "clientarea:sso"}, headers=basic(*credential)).json
    assert body["scope"] == "clientarea:sso"
    assert app.get(sso_path(body["redirect_url"]), status=303).headers["Location"] == (
        SYSTEM_URL + "/clientarea.php"
    )


def test_both_authentication_methods_at_once(app, credential):
    identifier, secret = credential
    response = grant(
        app, {"client_id": identifier, "client_secret": secret}, headers=basic(*credential), status=400
    )
    assert error_of(response) == "invalid_request"


def test_no_authentication(app):
    response = grant(app, status=401)
    assert error_of(response) == "invalid_client"


def test_wrong_secret_and_unknown_client_answer_alike(app, credential):
    identifier, _ = credential
    wrong = grant(app, headers=basic(identifier, "wrong"), status=401)
    unknown = grant(app, headers=basic("f" * 32, "wrong"), status=401)
    assert wrong.body == unknown.body
    assert error_of(wrong) == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    body = grant(app, {"client_id": identifier, "client_secret": "wrong"}, status=401)
    assert "WWW-Authenticate" not in body.headers


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Bearer x",
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
    ],
)
def test_malformed_basic_header(app, header):
    response = grant(app, headers={"Authorization": header}, status=401)
    assert error_of(response) == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_reset_secret_stops_the_old_one_at_once(app, middleware, credential):
    identifier, old = credential
    created = middleware.oauth_credentials.list()[0]
    _, new = middleware.oauth_credentials.update(created.credential_id, reset_secret=True)
    grant(app, headers=basic(identifier, old), status=401)
    grant(app, headers=basic(identifier, new))


def test_deleted_credential(app, middleware, credential):
    middleware.oauth_credentials.delete(middleware.oauth_credentials.list()[0].credential_id)
    grant(app, headers=basic(*credential), status=401)


@pytest.mark.parametrize(
    "grant_type, status, error",
    [
        ("authorization_code", 400, "unsupported_grant_type"),
        ("client_credentials", 400, "unsupported_grant_type"),
        ("", 400, "invalid_request"),
    ],
)
def test_grant_type(app, credential, grant_type, status, error):
    response = grant(app, {"grant_type": grant_type}, headers=basic(*credential), status=status)
    assert error_of(response) == error


def test_missing_grant_type(app, credential):
    response = app.post(TOKEN_PATH, {"scope": SCOPE}, headers=basic(*credential), status=400)
    assert error_of(response) == "invalid_request"


def test_duplicated_parameters(app, credential):
    response = app.post(
        TOKEN_PATH,
        [("grant_type", "single_sign_on"), ("scope", SCOPE), ("scope", SCOPE)],
        headers=basic(*credential),
        status=400,
    )
    assert response.json["error"] == "invalid_request"
    assert "more than once" in response.json["error_description"]
    response = app.post(
        TOKEN_PATH + "?scope=clientarea:sso",
        {"grant_type": "single_sign_on", "scope": SCOPE},
        headers=basic(*credential),
        status=400,
    )
    assert response.json["error"] == "invalid_request"


def test_credentials_in_the_query_string_are_refused(app, credential):
    identifier, secret = credential
    response = app.post(
        f"{TOKEN_PATH}?client_id={identifier}&client_secret={secret}",
        {"grant_type": "single_sign_on", "scope": SCOPE},
        status=400,
    )
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD"])
def test_only_post(app, method):
    response = app.request(TOKEN_PATH, method=method, status=405)
    assert response.headers["Allow"] == "POST"


def test_form_encoding_required(app, credential):
    response = app.post(
        TOKEN_PATH,
        json.dumps({"grant_type": "single_sign_on"}),
        headers={**basic(*credential), "Content-Type": "application/json"},
        status=400,
    )
    assert error_of(response) == "invalid_request"


@pytest.mark.parametrize(
    "change, description",
    [
        (lambda users: users.set_status(1, AccountStatus.CLOSED), "SSO authentication blocked for client 1"),
        (lambda users: users.set_sso_allowed(1, False), "SSO authentication blocked for client 1"),
    ],
)
def test_closed_or_switched_off_account_is_refused_at_the_endpoint(
    app, credential, user_store, change, description
):
    change(user_store)
    response = grant(app, headers=basic(*credential), status=400)
    assert response.json == {"error": "invalid_grant", "error_description": description}


def test_redis_down_is_a_503(make_middleware, middleware, credential):
    dead = make_middleware(
        credentials=middleware.oauth_credentials.store,
        tokens=RedisTokenStore(connect(f"redis://127.0.0.1:{free_port()}/0")),
    )
    response = grant(browser(dead), headers=basic(*credential), status=503)
    assert response.json["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"]


def test_a_credential_follows_its_service(app, middleware, credential, user_store):
    """Moved to another account (or gone), the service no longer signs in
    its old owner through a set the new owner's panel may hold."""
    user_store.add_service(client_id=2, service_id=101)
    response = grant(app, headers=basic(*credential), status=400)
    assert response.json == {
        "error": "invalid_grant",
        "error_description": "Service ID not associated with valid Client.",
    }
    del user_store.objects[("service", 101)]
    grant(app, headers=basic(*credential), status=400)


# -- one round trip per grant, and changes that take effect at once --------------------------


@pytest.mark.parametrize("wrong_secret_first", [False, True], ids=["known", "after-a-wrong-secret"])
def test_a_grant_is_one_round_trip_once_the_set_is_known(app, credential, monkeypatch, wrong_secret_first):
    """Also after anyone sent a wrong secret for the identifier (which is no
    secret): that must not make its owner's next grant read the store."""
    for _ in range(2):  # the process reads the set once, and loads the script
        grant(app, headers=basic(*credential))
    if wrong_secret_first:
        grant(app, headers=basic(credential[0], "wrong-" + "w" * 40), status=401)
    sent = []
    send = redis.connection.Connection.send_packed_command

    def recording(self, command, *args, **kwargs):
        sent.append(command)
        return send(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", recording)
    grant(app, headers=basic(*credential))
    assert len(sent) == 1  # the set's record confirmed and the token stored in one script


@pytest.fixture
def other_process(make_middleware):
    """A second middleware on the same Redis: another worker process."""
    return browser(make_middleware())


@pytest.mark.parametrize("change", ["reset", "scope", "delete"])
def test_a_change_in_one_process_takes_effect_at_once_in_another(
    app, middleware, other_process, credential, change
):
    identifier, secret = credential
    grant(other_process, headers=basic(identifier, secret))  # it now holds a copy of the set
    found = middleware.oauth_credentials.list()[0]
    if change == "reset":
        _, new_secret = middleware.oauth_credentials.update(found.credential_id, reset_secret=True)
        assert (
            error_of(grant(other_process, headers=basic(identifier, secret), status=401)) == "invalid_client"
        )
        grant(other_process, headers=basic(identifier, new_secret))
    elif change == "scope":
        middleware.oauth_credentials.update(found.credential_id, scope="clientarea:product_details")
        refused = grant(other_process, headers=basic(identifier, secret), status=400)
        assert error_of(refused) == "invalid_scope"
    else:
        middleware.oauth_credentials.delete(found.credential_id)
        assert (
            error_of(grant(other_process, headers=basic(identifier, secret), status=401)) == "invalid_client"
        )


def test_a_grant_racing_a_reset_is_refused_and_stores_no_token(middleware, credential, redis_client):
    """The copy a grant was checked against is confirmed as its token is
    stored: a reset in between refuses the grant, and no token is left."""
    identifier, secret = credential
    manager = middleware.oauth_credentials
    checked = manager.authenticate_cached(identifier, secret)
    assert checked is not None
    found, copy = checked[0], manager.store.get(identifier)
    manager.update(found.credential_id, reset_secret=True)
    tokens = middleware.issuer.token_store
    with pytest.raises(CredentialChanged):
        manager.add_token_if_current(identifier, copy, tokens, "k" * 43, b"record", 60)
    assert redis_client.exists("sso:v2:t:" + "k" * 43) == 0


def test_without_a_one_step_path_the_set_is_read_before_the_token_is_stored(make_middleware):
    """Memory stores (and Cluster, or a store that waits for replicas) take
    two steps; a reset still takes effect at once."""
    middleware = make_middleware(**{name: store for name, store in vars(Stores.memory()).items()})
    app = browser(middleware)
    created, secret = middleware.oauth_credentials.create(
        grant_type="single_sign_on", scope="clientarea:invoices", service_id=101
    )
    grant(app, headers=basic(created.identifier, secret))
    grant(app, headers=basic(created.identifier, secret))
    middleware.oauth_credentials.update(created.credential_id, reset_secret=True)
    assert error_of(grant(app, headers=basic(created.identifier, secret), status=401)) == "invalid_client"


def test_the_one_step_path_is_refused_where_one_script_cannot_do_it(redis_client):
    credentials = RedisCredentialStore(redis_client)
    for tokens in (MemoryTokenStore(), RedisTokenStore(redis_client, wait=(1, 10))):
        assert credentials.add_token_if_current("id", b"r", tokens, "k" * 43, b"t", 60) is NotImplemented


def test_a_reset_secret_works_at_once_in_a_process_holding_the_old_copy(
    middleware, other_process, credential
):
    """The new secret is checked against the store, not refused by the
    stale copy, even as the first grant after the reset."""
    identifier, secret = credential
    grant(other_process, headers=basic(identifier, secret))  # it now holds a copy of the set
    found = middleware.oauth_credentials.list()[0]
    _, new_secret = middleware.oauth_credentials.update(found.credential_id, reset_secret=True)
    assert grant(other_process, headers=basic(identifier, new_secret)).json["access_token"]


def test_a_body_not_form_encoded_is_not_read(app, credential):
    """A JSON body is refused for its media type, never parsed: not even its
    size or its bytes matter."""
    for body in (b'{"pad":"' + b"x" * (17 * 1024) + b'"}', b'{"a":"\xff"}'):
        response = app.post(
            TOKEN_PATH, body, headers={**basic(*credential), "Content-Type": "application/json"}, status=400
        )
        assert error_of(response) == "invalid_request"
        assert "form-encoded" in response.json["error_description"]


def test_a_head_at_the_token_endpoint_has_no_body(app):
    response = app.head(TOKEN_PATH, status=405)
    assert response.headers["Allow"] == "POST"
    assert response.body == b""
    assert int(response.headers["Content-Length"]) > 0  # the length a POST's answer would have
