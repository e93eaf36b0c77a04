from django.urls import path

from . import views

urlpatterns = [
    path("secrets", views.SecretListView.as_view(), name="secret-list"),
    path("secrets/<str:name>", views.SecretDetailView.as_view(), name="secret-detail"),
    path("secrets/<str:name>/plugins", views.SecretGrantsView.as_view(), name="secret-grants"),
    path("callbacks/signing-secret", views.CallbackSigningSecretView.as_view(), name="callback-signing-secret"),
    path("callbacks/signing-secret/rotate", views.CallbackSigningSecretRotateView.as_view(),
         name="callback-signing-secret-rotate"),
]
