from django.urls import path

from departments import views

app_name = "departments"

urlpatterns = [
    path("<slug:slug>/", views.department_detail, name="detail"),
]
