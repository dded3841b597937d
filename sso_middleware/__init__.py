"""
sso_middleware
==============

WHMCS-style single sign-on for any WSGI application: a trusted system mints a
single-use token for one user and one destination, sends the user's browser
to the SSO endpoint, and the middleware burns the token, checks the account,
starts a session and redirects.
"""

from __future__ import annotations

from .destinations import Destinations as Destinations
from .exceptions import APIError as APIError
from .exceptions import ConfigurationError as ConfigurationError
from .exceptions import SSOError as SSOError
from .exceptions import StoreUnavailable as StoreUnavailable
from .identity import ENVIRON_KEY as ENVIRON_KEY
from .identity import Identity as Identity
from .identity import get_identity as get_identity
from .metrics import Metrics as Metrics
from .middleware import SSOMiddleware as SSOMiddleware
from .options import AdminAPIOptions as AdminAPIOptions
from .options import Limits as Limits
from .options import Paths as Paths
from .options import RedemptionOptions as RedemptionOptions
from .options import SessionOptions as SessionOptions
from .ratelimit import Limit as Limit
from .stores import Stores as Stores
from .users import Account as Account
from .users import AccountStatus as AccountStatus
from .users import MemoryUserStore as MemoryUserStore
from .users import User as User
from .users import UserStore as UserStore

__version__ = "0.1.0"
