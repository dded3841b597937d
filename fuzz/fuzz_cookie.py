"""atheris: the session cookie (any Cookie header; well-signed values that
name no session; signed values tampered with). Nothing may sign anyone in."""

import atheris

from _common import run, targets, text

TARGETS = targets()
NAME = "__Host-sso_session"


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        header = text(fdp, 400)
    elif choice == 1:
        header = f"{NAME}={text(fdp, 200)}"
    elif choice == 2:
        header = f"{NAME}={TARGETS.signed(fdp.ConsumeUnicodeNoSurrogates(60))}"
    else:
        signed = TARGETS.signed(fdp.ConsumeUnicodeNoSurrogates(50))
        cut = fdp.ConsumeIntInRange(0, len(signed))
        header = f"{NAME}={signed[:cut]}{text(fdp, 8)}{signed[cut:]}"
    TARGETS.cookie(header)


if __name__ == "__main__":
    run(test_one_input)
