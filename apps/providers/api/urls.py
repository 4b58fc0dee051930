from django.urls import path

from apps.providers.api import views

urlpatterns = [
    path("providers", views.ProviderListView.as_view(), name="provider-list"),
    path(
        "providers/<uuid:provider_id>", views.ProviderDetailView.as_view(), name="provider-detail"
    ),
    path(
        "providers/<uuid:provider_id>/keys",
        views.ProviderKeyListView.as_view(),
        name="provider-key-list",
    ),
    path(
        "providers/<uuid:provider_id>/keys/<uuid:key_id>",
        views.ProviderKeyDetailView.as_view(),
        name="provider-key-detail",
    ),
    path(
        "providers/<uuid:provider_id>/verify",
        views.ProviderVerifyView.as_view(),
        name="provider-verify",
    ),
    path(
        "providers/<uuid:provider_id>/upstream-models",
        views.ProviderUpstreamModelsView.as_view(),
        name="provider-upstream-models",
    ),
    path(
        "providers/<uuid:provider_id>/models",
        views.ProviderModelListView.as_view(),
        name="provider-model-list",
    ),
    path(
        "providers/<uuid:provider_id>/models/<uuid:model_id>",
        views.ProviderModelDetailView.as_view(),
        name="provider-model-detail",
    ),
    path(
        "providers/<uuid:provider_id>/models/<uuid:model_id>/probe",
        views.ProviderModelProbeView.as_view(),
        name="provider-model-probe",
    ),
    path("provider-models", views.ModelListView.as_view(), name="model-list"),
    path("model-defaults", views.DefaultModelsView.as_view(), name="model-defaults"),
    path("usage", views.UsageView.as_view(), name="usage"),
    path("usage/export", views.UsageExportView.as_view(), name="usage-export"),
]
