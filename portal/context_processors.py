from core import roles


def roles_context(request) -> dict:
    """What the site shell needs to show the right navigation for the user's role."""
    user = request.user
    return {
        "portal_user_roles": {
            "finance": roles.is_finance(user),
            "it_admin": roles.is_it_admin(user),
            "admin": roles.can_use_admin(user),
        }
    }
