from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    # Included before admin/, whose catch-all would answer it otherwise.
    path("admin/dashboard/", admin.site.admin_view(views.dashboard_view), name="admin-dashboard"),
    path("health", views.HealthView.as_view(), name="health"),
    path("metrics", views.MetricsView.as_view(), name="metrics"),
    path("stats", views.StatsView.as_view(), name="stats"),
]
