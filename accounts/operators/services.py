"""Platform operators: superusers, and read-only support accounts (staff in SUPPORT_GROUP)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from accounts.models import StaffUser

SUPPORT_GROUP = "Support (read-only)"


def support_group_sync(**kwargs: Any) -> Group:
    """The support group, holding exactly every model's view permission (and nothing else).
    Runs after each `migrate` (post_migrate), so models added later are covered too."""
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    group.permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return group


@transaction.atomic
def support_user_create(*, email: str, password: str | None) -> StaffUser:
    """A read-only support account: staff of the admin, no partner, no role, not a superuser;
    its only permissions are those of SUPPORT_GROUP."""
    user = StaffUser.objects.create_user(email, password, is_staff=True, is_superuser=False, partner=None, role="")
    user.groups.add(support_group_sync())
    return user
