from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="docs"), name="root"),
    # First: it holds admin/dashboard/, which admin/'s catch-all would answer otherwise.
    path("", include("observability.urls")),
    path("admin/", admin.site.urls),
    path("", include("plugins.api.urls")),
    path("", include("quotas.api.urls")),
    path("", include("executions.api.urls")),
    path("", include("audit.api.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

handler400 = "core.envelope.handler400"
handler404 = "core.envelope.handler404"
handler500 = "core.envelope.handler500"
