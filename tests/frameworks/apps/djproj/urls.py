"""URLs of the test project."""

from __future__ import annotations

from django.urls import path  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("items/<int:item_id>/", views.item, name="item"),
    path("whoami/", views.whoami),
    path("json/", csrf_exempt(views.echo_json)),
    path("form/", csrf_exempt(views.form)),
    path("protected/", views.protected),
    path("stream-async/<str:name>/", views.stream_async),
    path("stream-sync/<str:name>/", views.stream_sync),
    path("release/<str:name>/", csrf_exempt(views.release)),
]
