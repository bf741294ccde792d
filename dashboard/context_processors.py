from django.http import HttpRequest
from django.utils import timezone

from accounts.roles import Action, can
from metrics.selectors import latest_snapshot_date


def partner_context(request: HttpRequest) -> dict[str, object]:
    """The signed-in partner, what the user may do (navigation) and how fresh its metrics are."""
    user = getattr(request, "user", None)
    partner = getattr(request, "partner", None)
    context: dict[str, object] = {
        "partner": partner,
        "allowed": {action.value: can(user, action) for action in Action},
    }
    if partner is not None:
        as_of = latest_snapshot_date(partner=partner)
        context["metrics_as_of"] = as_of
        context["metrics_days_behind"] = (timezone.localdate() - as_of).days if as_of else None
    return context
