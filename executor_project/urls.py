from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from executions.observability_views import dashboard_view

urlpatterns = [
    # Before admin/, whose catch-all would answer it otherwise.
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("", include("plugins.urls")),
    path("", include("quotas.urls")),
    path("", include("executions.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

handler400 = "executions.errors.handler400"
handler404 = "executions.errors.handler404"
handler500 = "executions.errors.handler500"
