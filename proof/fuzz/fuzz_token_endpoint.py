"""atheris: the token endpoint's form, query and HTTP Basic header."""

import base64

import atheris

from ._common import run, targets, text

TARGETS = targets()


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        authorization = None
    elif choice == 1:
        authorization = text(fdp, 100)
    elif choice == 2:
        authorization = "Basic " + base64.b64encode(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 80))).decode()
    else:
        pair = f"{TARGETS.client_id}:{TARGETS.client_secret}" if fdp.ConsumeBool() else text(fdp, 60)
        authorization = "Basic " + base64.b64encode(pair.encode("latin-1", "replace")).decode()
    query = text(fdp, 200) if fdp.ConsumeBool() else ""
    body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2000))
    if fdp.ConsumeBool():
        body = b"grant_type=single_sign_on&scope=clientarea%3Asso+" + body
    TARGETS.token_form(body, query, authorization)


if __name__ == "__main__":
    run(test_one_input)
