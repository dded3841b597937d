"""atheris: destinations.is_safe_path and the custom-redirect scope. Every
path accepted must stay in the deployment when a browser resolves it
(proof.redirects.escape), under a path prefix too."""

import atheris

from sso_middleware.exceptions import APIError

from ._common import Crash, Destinations, escape, is_safe_path, run

DESTINATIONS = Destinations()
BASE = "https://portal.example.com/app"


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    path = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 300))
    if is_safe_path(path):
        why = escape(BASE + path, BASE)
        if why:
            raise Crash(f"is_safe_path accepted a path that leaves the deployment: {why}", repr(path))
    try:
        resolved = DESTINATIONS.resolve("sso:custom_redirect", sso_redirect_path=path)
    except APIError:
        return
    why = escape(BASE + resolved, BASE)
    if why:
        raise Crash(f"sso:custom_redirect resolved outside the deployment: {why}", repr(path))


if __name__ == "__main__":
    run(test_one_input)
