"""
Stores
======

Where tokens, sessions, rate-limit counters and OAuth credential sets live.
Each kind of store is a small protocol with two implementations: :mod:`.redis` for production (any number of processes and
machines) and :mod:`.memory` for a single development process.

Stores see only opaque keys (digests, never a raw token or session id) and
opaque byte records; what a record means is the business of :mod:`..tokens`
and :mod:`..sessions`.
"""

from __future__ import annotations

from .protocols import CounterStore as CounterStore
from .protocols import CredentialStore as CredentialStore
from .protocols import SessionStore as SessionStore
from .protocols import TokenStore as TokenStore
