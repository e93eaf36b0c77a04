from django.urls import path

from . import views

urlpatterns = [
    path("plugins", views.PluginListView.as_view(), name="plugin-list"),
    path("plugins/<slug:plugin_id>", views.PluginDetailView.as_view(), name="plugin-detail"),
    path("plugins/<slug:plugin_id>/activate", views.PluginActivateView.as_view(), name="plugin-activate"),
    path("plugins/<slug:plugin_id>/enable", views.PluginEnabledView.as_view(enabled=True), name="plugin-enable"),
    path("plugins/<slug:plugin_id>/disable", views.PluginEnabledView.as_view(enabled=False), name="plugin-disable"),
]
