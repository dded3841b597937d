"""The portal's routes; the account pages are those of the shared destination
table (:data:`examples.portal.EXAMPLE_DESTINATIONS`)."""

from __future__ import annotations

from django.urls import path

from examples.django_app import views

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in", views.sign_in, name="sign-in"),
    path("whoami", views.whoami, name="whoami"),
    path("account/profile", views.profile, name="profile"),
    path("account/services", views.services, name="services"),
    path("account/services/<int:service_id>", views.service, name="service"),
    path("account/invoices", views.invoices, name="invoices"),
    path("account/security", views.security, name="security"),
]
