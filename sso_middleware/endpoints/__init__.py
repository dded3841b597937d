"""
Endpoints
=========

The WSGI applications behind the paths the middleware answers itself; every
other path goes to the wrapped app.

=========================  ===============================================
``sso``                    ``GET /oauth/singlesignon.php``: redeem a token
``admin_api``              ``POST /includes/api.php``: CreateSsoToken, OAuth credential sets
``token``                  ``POST /oauth/token.php``: the ``single_sign_on`` grant
``logout``                 ``POST /logout``: end the session
=========================  ===============================================

Each answers every request itself and never raises: bad input is a 4xx, a
store outage a 503.
"""
