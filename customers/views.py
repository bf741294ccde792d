from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.roles import Action, require_action
from customers import selectors

CUSTOMERS_PER_PAGE = 50


@require_action(Action.VIEW_INSIGHTS)
def customer_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    customers = selectors.customer_list(partner=request.partner, search=search)
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "customers/customer_list.html", {"page": page, "search": search})


@require_action(Action.VIEW_INSIGHTS)
def own_subscriptions(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = selectors.customer_get(partner=request.partner, customer_id=customer_id)
    subscriptions = selectors.own_subscription_list(partner=request.partner, customer=customer)
    return render(request, "customers/subscription_list.html", {"customer": customer, "subscriptions": subscriptions})
