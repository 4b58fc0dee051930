from django.urls import path

from apps.tasks.api import views

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
]
