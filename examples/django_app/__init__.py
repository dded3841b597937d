"""The Django client portal behind sso_middleware: a project of its own
(:mod:`~examples.django_app.settings`, :mod:`~examples.django_app.urls`,
:mod:`~examples.django_app.views`, :mod:`~examples.django_app.wsgi`), wrapped
in :mod:`examples.django_app.app`."""
