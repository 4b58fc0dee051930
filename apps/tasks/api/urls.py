from django.urls import path

from apps.tasks.api import trigger_views, views, webhook_views

urlpatterns = [
    path("tasks", views.TaskListView.as_view(), name="task-list"),
    path("tasks/<uuid:task_id>", views.TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<uuid:task_id>/enable", views.TaskEnableView.as_view(), name="task-enable"),
    path("tasks/<uuid:task_id>/disable", views.TaskDisableView.as_view(), name="task-disable"),
    path("tasks/<uuid:task_id>/run", views.TaskRunNowView.as_view(), name="task-run-now"),
    path(
        "tasks/<uuid:task_id>/executions",
        views.ExecutionListView.as_view(),
        name="task-execution-list",
    ),
    path(
        "tasks/<uuid:task_id>/executions/<uuid:execution_id>",
        views.ExecutionDetailView.as_view(),
        name="task-execution-detail",
    ),
    path("webhooks/endpoints", webhook_views.EndpointListView.as_view(), name="webhook-list"),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>",
        webhook_views.EndpointDetailView.as_view(),
        name="webhook-detail",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/rotate-secret",
        webhook_views.EndpointRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/test",
        webhook_views.EndpointTestView.as_view(),
        name="webhook-test",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/deliveries",
        webhook_views.DeliveryListView.as_view(),
        name="webhook-delivery-list",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>",
        webhook_views.DeliveryDetailView.as_view(),
        name="webhook-delivery-detail",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/redeliver",
        webhook_views.DeliveryRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
    path("triggers", trigger_views.TriggerListView.as_view(), name="trigger-list"),
    path(
        "triggers/<uuid:trigger_id>",
        trigger_views.TriggerDetailView.as_view(),
        name="trigger-detail",
    ),
    path(
        "triggers/<uuid:trigger_id>/fire",
        trigger_views.TriggerFireView.as_view(),
        name="trigger-fire",
    ),
]
