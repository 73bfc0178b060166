from django.contrib import admin
from django.urls import include, path

from circles import views as circle_views

admin.site.site_header = "Peer Circles administration"
admin.site.site_title = "Peer Circles admin"

urlpatterns = [
    path("", circle_views.home, name="home"),
    path("crisis/", circle_views.crisis, name="crisis"),
    path("guidelines/", circle_views.guidelines, name="guidelines"),
    path("circles/", include("circles.urls")),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
