"""Connecting to a Ray cluster in whichever authentication mode it runs: `kexp compare --engine
ray --address HOST:PORT` on Ray 2.60.

What Ray 2.60 does, in the order a user meets it: the first local `ray.init()` (a local study,
the test suite) turns token authentication on for that Ray and saves a new token to
~/.ray/auth_token; from then on `ray start --head` on that machine finds the token and runs the
cluster with token authentication too. A driver that connects to an explicit address sends the
token only when RAY_AUTH_MODE=token is in its environment: without it, it waits about 20 s and
fails with "Failed to connect to Ray cluster"; with it, on a cluster without authentication, it
connects but its actors never start. kexp asks the cluster first (one call to its GCS without a
token, answered at once) and connects in token mode only when the cluster requires a token.

Uses Ray's private API (GcsClient, the token loader), pinned to Ray 2.60 by requirements-ray.txt.
Ray is imported inside the function: importing this module needs no Ray.
"""

from __future__ import annotations

import os
from pathlib import Path

from kexp.errors import KexpError

MODE_VARIABLE = "RAY_AUTH_MODE"
TOKEN_VARIABLE = "RAY_AUTH_TOKEN"
TOKEN_PATH_VARIABLE = "RAY_AUTH_TOKEN_PATH"
WHERE_RAY_LOOKS = (f"Ray reads it from {TOKEN_VARIABLE}, else from the file that "
                   f"{TOKEN_PATH_VARIABLE} names, else from ~/.ray/auth_token")


class ClusterTokenError(KexpError):
    """The cluster at --address requires a token that this machine does not hold."""


def default_token_path() -> Path:
    """Where `ray.init()` and `ray get-auth-token --generate` save a new token."""
    return Path.home() / ".ray" / "auth_token"


def token_file() -> str:
    """The file that Ray reads this machine's token from, where RAY_AUTH_TOKEN is not set."""
    return os.environ.get(TOKEN_PATH_VARIABLE) or str(default_token_path())


def token_source() -> str:
    """Where Ray takes this machine's token from (for the messages)."""
    return f"the {TOKEN_VARIABLE} variable" if os.environ.get(TOKEN_VARIABLE) else token_file()


def authenticate(address: str) -> None:
    """Before `ray.init(address=address)`: put this process in the authentication mode of the
    cluster at `address` (RAY_AUTH_MODE=token where it requires a token that this machine holds,
    disabled where it requires none: a driver in token mode connects there but its actors never
    start); raise ClusterTokenError, saying what fixes it, when this machine holds no token or
    the wrong one. "auto" and ray:// addresses are left to Ray. A cluster that cannot be reached
    raises Ray's own error (ray.exceptions.RayError)."""
    from ray._private import services
    from ray._raylet import AuthenticationTokenLoader, Config, GcsClient
    from ray.exceptions import AuthenticationError

    if address == "auto" or address.startswith("ray://"):
        return
    gcs_address = services.canonicalize_bootstrap_address_or_die(address)
    loader = AuthenticationTokenLoader.instance()

    def use(mode: str) -> None:  # as Ray's own `ray start` switches its process
        os.environ[MODE_VARIABLE] = mode
        Config.initialize("")
        loader.reset_cache()  # a token loaded meanwhile would make this driver demand it

    def accepted() -> bool:
        try:
            GcsClient(address=gcs_address).cluster_id
        except AuthenticationError:
            return False
        return True

    use("disabled")
    if accepted():
        return
    if not loader.has_token(ignore_auth_mode=True):
        raise _refused(address, "this machine holds none")
    use("token")
    if not accepted():
        raise _refused(address, f"it refused this machine's token (from {token_source()})")


def _refused(address: str, problem: str) -> ClusterTokenError:
    return ClusterTokenError(
        f"Invalid value for `address`: {address!r}. Expected a Ray cluster whose "
        f"authentication token this machine holds: the cluster there requires a token and "
        f"{problem}. {WHERE_RAY_LOOKS}. Fix: copy the head node's ~/.ray/auth_token to "
        f"{token_file()} (`ray get-auth-token` on the head prints it), or run with "
        f"{TOKEN_VARIABLE}=<that token>.")
