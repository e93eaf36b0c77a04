from django.urls import path

from . import views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("execute", views.ExecuteView.as_view(), name="execute"),
    path("executions/<uuid:execution_id>", views.ExecutionDetailView.as_view(), name="execution-detail"),
]
