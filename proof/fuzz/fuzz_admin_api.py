"""atheris: the admin API form (any body, content type, method), sometimes
with valid credentials so every action's parsing is reached."""

import urllib.parse

import atheris

from ._common import API_SECRET, run, targets, text

TARGETS = targets()
TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "multipart/form-data",
    "text/plain",
    None,
]
ACTIONS = [
    "CreateSsoToken",
    "CreateOAuthCredential",
    "ListOAuthCredentials",
    "UpdateOAuthCredential",
    "DeleteOAuthCredential",
    "EndSsoSessions",
    "",
]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    content_type = fdp.PickValueInList(TYPES)
    if fdp.ConsumeBool():
        fields = [("identifier", "parsers"), ("secret", API_SECRET), ("action", fdp.PickValueInList(ACTIONS))]
        for _ in range(fdp.ConsumeIntInRange(0, 6)):
            fields.append((text(fdp, 20), text(fdp, 60)))
        body = urllib.parse.urlencode(fields, encoding="latin-1").encode()
    else:
        body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4000))
    TARGETS.admin_form(body, content_type, fdp.PickValueInList(["POST", "POST", "GET"]))


if __name__ == "__main__":
    run(test_one_input)
