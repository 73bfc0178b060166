from django.urls import path

from circles import views

app_name = "circles"

urlpatterns = [
    path("", views.circle_list, name="list"),
    path("new/", views.circle_new, name="new"),
    path("invite/<str:token>/", views.invite_accept, name="invite_accept"),
    path("<slug:slug>/", views.circle_detail, name="detail"),
    path("<slug:slug>/join/", views.circle_join, name="join"),
    path("<slug:slug>/leave/", views.circle_leave, name="leave"),
    path("<slug:slug>/room/", views.circle_room, name="room"),
    path("<slug:slug>/session/open/", views.circle_session_open, name="session_open"),
    path("<slug:slug>/session/close/", views.circle_session_close, name="session_close"),
    path("<slug:slug>/members/", views.circle_members, name="members"),
    path("<slug:slug>/floor-settings/", views.circle_floor_settings, name="floor_settings"),
    path("<slug:slug>/sessions/<int:session_id>/", views.circle_session, name="session"),
    path(
        "<slug:slug>/members/<int:membership_id>/moderator/",
        views.member_make_moderator,
        name="make_moderator",
    ),
    path("<slug:slug>/step-down/", views.moderator_leave_role, name="step_down"),
    path("<slug:slug>/requests/", views.circle_requests, name="requests"),
    path(
        "<slug:slug>/requests/<int:membership_id>/approve/",
        views.request_approve,
        name="request_approve",
    ),
    path(
        "<slug:slug>/requests/<int:membership_id>/decline/",
        views.request_decline,
        name="request_decline",
    ),
    path("<slug:slug>/invite/", views.circle_invite, name="invite"),
]
