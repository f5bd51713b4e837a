"""Signing a person in from the identity provider's claims, and applying what its groups
give (accounts.RoleMapping) to their roles.

The provider's part of a person's roles is kept apart from IT's: a membership the
provider gave is marked ``origin=provider`` and a Django group it gave has a
:class:`ProviderGrant`. A sign-in adds, changes and removes only those; a membership or a
group IT set by hand stays as it is, whatever the provider sends.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import selectors
from accounts.models import ProviderGrant, ProviderIdentity
from departments.models import Membership, MembershipOrigin

logger = logging.getLogger(__name__)

# Bounds on what a provider's claims may carry into the database.
MAX_GROUPS = 1000
MAX_GROUP_CHARS = 255


class ProviderSignInRefused(Exception):
    """The provider vouched for the person, and the portal still will not sign them in
    (the account is switched off, or the claims lack what the portal needs)."""


@dataclass
class RolesChange:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def groups_from_claims(claims: dict) -> list[str]:
    """The values of the group claim (``OIDC_GROUPS_CLAIM``) as a list of strings. A
    provider sends a list, or one string for one group; anything else counts as none.
    Values longer than a group can be are dropped, and at most ``MAX_GROUPS`` are kept."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    groups = sorted({v for v in value if isinstance(v, str) and v and len(v) <= MAX_GROUP_CHARS})
    return groups[:MAX_GROUPS]


def _username_from_claims(claims: dict) -> str:
    User = get_user_model()
    max_chars = User._meta.get_field("username").max_length
    for claim in (settings.OIDC_USERNAME_CLAIM, "preferred_username", "email", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:max_chars]
    raise ProviderSignInRefused("The identity provider sent no subject (sub) for this person.")


def _free_username(base: str) -> str:
    User = get_user_model()
    max_chars = User._meta.get_field("username").max_length
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        suffix = f"-{n}"
        candidate = base[: max_chars - len(suffix)] + suffix
    return candidate


def _linkable(user, issuer: str) -> bool:
    """An existing account the provider may take over by its username: not a superuser,
    not a break-glass account, not already someone else at this provider."""
    return not (
        user.is_superuser
        or user.username in settings.PASSWORD_LOGIN_USERS
        or user.provider_identities.filter(issuer=issuer).exists()
    )


def _text_claim(claims: dict, name: str, max_chars: int) -> str | None:
    value = claims.get(name)
    return value.strip()[:max_chars] if isinstance(value, str) else None


def provider_user_sign_in(*, issuer: str, claims: dict):
    """The user the provider's ``claims`` name, found by issuer and subject (or, the first
    time, by username, or created), with their name and e-mail from the claims and their
    roles brought in line with the claims' groups. Raises :class:`ProviderSignInRefused`
    for a switched-off account.

    Two first sign-ins of one person at once (two tabs, a script and a browser) both try
    to create them; the database lets one through (one identity per issuer and subject)
    and the other, tried again, finds the person the first created."""
    try:
        return _provider_user_sign_in(issuer=issuer, claims=claims)
    except IntegrityError:
        return _provider_user_sign_in(issuer=issuer, claims=claims)


@transaction.atomic
def _provider_user_sign_in(*, issuer: str, claims: dict):
    User = get_user_model()
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise ProviderSignInRefused("The identity provider sent no usable subject (sub).")
    identity = selectors.provider_identity_of(issuer=issuer, subject=subject)
    if identity is not None:
        user = identity.user
    else:
        username = _username_from_claims(claims)
        user = User.objects.filter(username=username).first()
        if user is None or not _linkable(user, issuer):
            user = User.objects.create_user(username=_free_username(username))
            user.set_unusable_password()
        identity = ProviderIdentity(user=user, issuer=issuer, subject=subject)
    if not user.is_active:
        raise ProviderSignInRefused(
            f"The account {user.username} is switched off in the portal; ask IT."
        )
    for attribute, claim in (
        ("email", "email"),
        ("first_name", "given_name"),
        ("last_name", "family_name"),
    ):
        max_chars = User._meta.get_field(attribute).max_length
        value = _text_claim(claims, claim, max_chars)
        if value is not None:
            setattr(user, attribute, value)
    user.save()
    groups = groups_from_claims(claims)
    identity.groups = groups
    identity.last_seen_at = timezone.now()
    identity.save()
    change = provider_roles_apply(user=user, groups=groups)
    if change:
        logger.info(
            "Sign-in of %s changed roles from the identity provider: added %s, removed %s",
            user.username,
            change.added or "nothing",
            change.removed or "nothing",
        )
    return user


@transaction.atomic
def provider_roles_apply(*, user, groups: list[str]) -> RolesChange:
    """Bring the roles the provider gave ``user`` in line with what ``groups`` map to now.
    Locks the user's row, so two sign-ins of one person apply one after the other."""
    User = get_user_model()
    User.objects.select_for_update().filter(pk=user.pk).first()
    wanted = selectors.roles_for_groups(groups=groups)
    change = RolesChange()

    granted = {
        g.group.name: g for g in ProviderGrant.objects.filter(user=user).select_related("group")
    }
    held = set(user.groups.values_list("name", flat=True))
    for name, grant in granted.items():
        if name not in wanted.groups:
            user.groups.remove(grant.group)
            grant.delete()
            change.removed.append(name)
    for name in sorted(wanted.groups - held):
        group, _ = Group.objects.get_or_create(name=name)
        user.groups.add(group)
        ProviderGrant.objects.get_or_create(user=user, group=group)
        change.added.append(name)

    memberships = {
        m.department_id: m
        for m in Membership.objects.filter(user=user).select_related("department")
    }
    for department_id, membership in memberships.items():
        if membership.origin != MembershipOrigin.PROVIDER:
            continue
        role = wanted.departments.get(department_id)
        if role is None:
            membership.delete()
            change.removed.append(f"{membership.role} of {membership.department.slug}")
        elif role != membership.role:
            change.removed.append(f"{membership.role} of {membership.department.slug}")
            membership.role = role
            membership.save(update_fields=["role", "updated_at"])
            change.added.append(f"{role} of {membership.department.slug}")
    for department_id, role in wanted.departments.items():
        if department_id in memberships:
            continue
        membership = Membership.objects.create(
            user=user, department_id=department_id, role=role, origin=MembershipOrigin.PROVIDER
        )
        change.added.append(f"{role} of {membership.department.slug}")
    if hasattr(user, "_portal_group_names"):
        del user._portal_group_names
    return change


def provider_user_for_token(*, issuer: str, claims: dict):
    """The user an identity provider's access token names. The first token of someone
    the portal has not met signs them in as the browser would; a token whose groups differ
    from the last ones seen applies them (ask for the ``groups`` scope). Otherwise nothing
    is written."""
    identity = selectors.provider_identity_of(issuer=issuer, subject=claims.get("sub"))
    # A token without the group claim counts as no groups, as at a sign-in: roles hold only
    # while the provider vouches for them (providers leave the claim out when it is empty).
    if identity is None or groups_from_claims(claims) != identity.groups:
        return provider_user_sign_in(issuer=issuer, claims=claims)
    if not identity.user.is_active:
        raise ProviderSignInRefused(
            f"The account {identity.user.username} is switched off in the portal; ask IT."
        )
    return identity.user
