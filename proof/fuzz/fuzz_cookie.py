"""atheris: the session cookie (any Cookie header; well-signed values of the
middleware's own format naming no session, so that they get past the
signature and the payload's shape and reach the store; signed values that
are not a payload; signed values tampered with). Nothing may sign anyone in.

A payload is ``<key>.<session secret>.<user_id>.<client_id>`` (see
:mod:`sso_middleware.sessions`); arbitrary signed strings almost never have
that shape, so most inputs here are built field by field, as
``proof/parsers.py`` builds them: a random key or the key of a real record
(a token never redeemed, a live session), a random secret and ids, each
sometimes malformed, and sometimes a fifth field (an older release's
sign-on time)."""

import time

import atheris

from ._common import run, targets, text

TARGETS = targets()
NAME = "__Host-sso_session"
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def urlsafe(fdp: atheris.FuzzedDataProvider, length: int) -> str:
    """``length`` URL-safe Base64 characters, like a key or a secret."""
    return "".join(URLSAFE[b & 63] for b in fdp.ConsumeBytes(length)).ljust(length, "A")


def number(fdp: atheris.FuzzedDataProvider) -> str:
    """An id field: mostly an id as the payload allows it (up to 18 digits),
    sometimes one at or past the edges, sometimes anything."""
    choice = fdp.ConsumeIntInRange(0, 15)
    if choice < 14:
        return str(fdp.ConsumeIntInRange(0, 10**6))
    if choice == 14:
        return str(fdp.PickValueInList([-1, 10**18 - 1, 10**18, 2**63]))
    return text(fdp, 6)


def payload(fdp: atheris.FuzzedDataProvider) -> str:
    """A payload of the middleware's format, mostly well-formed: a signed
    cookie carrying it is looked up in the store and must still be refused."""
    choice = fdp.ConsumeIntInRange(0, 7)
    if choice < 2:
        key = fdp.PickValueInList(TARGETS.record_keys)
    elif choice == 2:
        key = urlsafe(fdp, fdp.ConsumeIntInRange(19, 25))  # near misses of the length
    elif choice == 3:
        key = urlsafe(fdp, 43)  # an earlier release's key
    else:
        key = urlsafe(fdp, 22)
    secret = urlsafe(fdp, 43) if fdp.ConsumeIntInRange(0, 7) else urlsafe(fdp, fdp.ConsumeIntInRange(40, 46))
    fields = [key, secret, number(fdp), number(fdp)]
    if not fdp.ConsumeIntInRange(0, 7):  # an older release's sign-on time, recent or not
        fields.append(str(int(time.time() * 1000) + fdp.ConsumeIntInRange(-(10**7), 10**12)))
    return ".".join(fields)


def value(fdp: atheris.FuzzedDataProvider) -> str:
    choice = fdp.ConsumeIntInRange(0, 7)
    if choice == 0:
        return text(fdp, 200)
    if choice == 1:  # well signed, not a payload
        return TARGETS.signed(fdp.ConsumeUnicodeNoSurrogates(60))
    if choice == 2:  # a signature that is none
        return f"{payload(fdp)}.{urlsafe(fdp, 43)}"
    signed = TARGETS.signed(payload(fdp))
    if choice == 7:  # signed, then tampered with
        cut = fdp.ConsumeIntInRange(0, len(signed))
        return f"{signed[:cut]}{text(fdp, 8)}{signed[cut:]}"
    return signed  # well signed, well-formed, no such session


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    choice = fdp.ConsumeIntInRange(0, 4)
    if choice == 0:
        header = text(fdp, 400)
    elif choice == 1:
        header = f'{NAME}="{value(fdp)}"'  # RFC 6265 allows quotes
    elif choice == 2:
        header = f"{text(fdp, 40)}; {NAME}={value(fdp)}"
    else:
        header = f"{NAME}={value(fdp)}"
    TARGETS.cookie(header)


if __name__ == "__main__":
    run(test_one_input)
