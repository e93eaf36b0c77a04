from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("executions.urls")),
]

handler400 = "executions.errors.handler400"
handler404 = "executions.errors.handler404"
handler500 = "executions.errors.handler500"
