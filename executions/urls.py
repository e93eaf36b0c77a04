from django.urls import path

from . import observability_views, views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("metrics", observability_views.MetricsView.as_view(), name="metrics"),
    path("stats", observability_views.StatsView.as_view(), name="stats"),
    path("events", observability_views.EventListView.as_view(), name="event-list"),
    path("execute", views.ExecuteView.as_view(), name="execute"),
    path("cache/clear", views.CacheClearView.as_view(), name="cache-clear"),
    path("cache/invalidate/<slug:plugin_id>", views.CacheInvalidateView.as_view(), name="cache-invalidate"),
    path("executions/<uuid:execution_id>", views.ExecutionDetailView.as_view(), name="execution-detail"),
]
