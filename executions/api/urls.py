from django.urls import path

from . import views

urlpatterns = [
    path("execute", views.ExecuteView.as_view(), name="execute"),
    path("execute/batch", views.ExecuteBatchView.as_view(), name="execute-batch"),
    path("cache/clear", views.CacheClearView.as_view(), name="cache-clear"),
    path("cache/invalidate/<slug:plugin_id>", views.CacheInvalidateView.as_view(), name="cache-invalidate"),
    # Any id: one that is not a UUID names no execution (EXECUTION_NOT_FOUND), not no endpoint.
    path("executions/<str:execution_id>", views.ExecutionDetailView.as_view(), name="execution-detail"),
]
