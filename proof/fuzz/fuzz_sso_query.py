"""atheris: the SSO endpoint's query parsing (any method, query, prefetch header)."""

import atheris

from ._common import run, targets, text

TARGETS = targets()
METHODS = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "get"]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    method = fdp.PickValueInList(METHODS)
    purpose = text(fdp, 20) if fdp.ConsumeBool() else None
    TARGETS.sso_query(method, text(fdp, 1500), purpose)


if __name__ == "__main__":
    run(test_one_input)
