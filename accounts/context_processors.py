from django.http import HttpRequest

from accounts.roles import Action, can


def partner_context(request: HttpRequest) -> dict[str, object]:
    """The signed-in partner and what the user may do, for the shared layout's navigation."""
    user = getattr(request, "user", None)
    return {
        "partner": getattr(request, "partner", None),
        "allowed": {action.value: can(user, action) for action in Action},
    }
