"""Platform operators: superusers, and read-only support accounts (staff in SUPPORT_GROUP)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from accounts.models import StaffUser

SUPPORT_GROUP = "Support (read-only)"


def _grant_every_view(group: Group) -> None:
    group.permissions.set(Permission.objects.filter(codename__startswith="view_"))


def support_group_sync() -> Group:
    """The support group (made by migration accounts/0004, remade if deleted), holding exactly
    every model's view permission and nothing else."""
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    _grant_every_view(group)
    return group


def support_group_after_migrate(**kwargs: Any) -> None:
    """post_migrate: models added since give their view permission to the group too. It never
    creates the group (the migration does), so a test database flushed between tests stays empty."""
    for group in Group.objects.filter(name=SUPPORT_GROUP):
        _grant_every_view(group)


@transaction.atomic
def support_user_create(*, email: str, password: str | None) -> StaffUser:
    """A read-only support account: staff of the admin, no partner, no role, not a superuser;
    its only permissions are those of SUPPORT_GROUP."""
    user = StaffUser.objects.create_user(email, password, is_staff=True, is_superuser=False, partner=None, role="")
    user.groups.add(support_group_sync())
    return user
