from django.urls import path

from apps.core.api import views

urlpatterns = [
    path("system/info", views.SystemInfoView.as_view(), name="system-info"),
    path("system/settings", views.SystemSettingsView.as_view(), name="system-settings"),
]
