"""Tokens: 256 bits from the CSPRNG, stored only as a digest."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest

from sso_middleware.tokens import TOKEN_PATTERN, TokenRecord, new_token, token_key


def test_tokens_are_256_random_bits_and_do_not_repeat():
    tokens = {new_token() for _ in range(100_000)}
    assert len(tokens) == 100_000
    for token in list(tokens)[:1000]:
        assert TOKEN_PATTERN.fullmatch(token)
        assert len(base64.urlsafe_b64decode(token + "=")) == 32


def test_tokens_come_from_secrets(monkeypatch):
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: f"from-secrets-{n}")
    assert new_token() == "from-secrets-32"


def test_token_key_is_128_bits_of_the_sha256_digest():
    token = new_token()
    digest = hashlib.sha256(token.encode()).digest()
    assert token_key(token) == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert len(token_key(token)) == 22
    assert token not in token_key(token)


def test_record_round_trip():
    record = TokenRecord(1, 2, "clientarea:invoices", "/x", 1700000000123)
    assert TokenRecord.decode(record.encode()) == record


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b"\xff",
        b'["1",1,"","/",1]',
        b'[1,1,"","/","now"]',
        b'[true,1,"","/",1]',
        b'[1,1,"","/",1.5]',
        b'[1,1,"","/"]',
        b'[1,1,"","/",1,2]',
        b'{"u":1,"c":1,"s":"","p":"/","t":1}',
    ],
)
def test_corrupted_records_raise_value_error(data):
    with pytest.raises(ValueError):
        TokenRecord.decode(data)
