"""Django's admin is the platform operator's tool (partners and their staff)."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Partner, StaffUser


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin[Partner]):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]


@admin.register(StaffUser)
class StaffUserAdmin(UserAdmin[StaffUser]):  # type: ignore[type-var]  # django-stubs bounds UserAdmin to AbstractUser
    ordering = ["email"]
    list_display = ["email", "full_name", "partner", "role", "is_active", "is_superuser"]
    list_filter = ["partner", "role", "is_active", "is_superuser"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password", "full_name"]}),
        ("Tenant", {"fields": ["partner", "role"]}),
        ("Access", {"fields": ["is_active", "is_staff", "is_superuser"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "partner", "role", "password1", "password2"]})]
