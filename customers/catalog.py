"""The SKU catalog shipped with the product (SPEC §1); imports may add or replace entries."""

OFFICE_SUITE = ("exchange", "sharepoint", "onedrive", "teams", "yammer")

# (sku, name, family, workloads)
CATALOG: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("STANDARDPACK", "Office 365 E1", "office365", OFFICE_SUITE),
    ("ENTERPRISEPACK", "Office 365 E3", "office365", (*OFFICE_SUITE, "office_apps")),
    ("ENTERPRISEPREMIUM", "Office 365 E5", "office365", (*OFFICE_SUITE, "office_apps")),
    ("O365_BUSINESS_ESSENTIALS", "Microsoft 365 Business Basic", "office365", OFFICE_SUITE),
    ("O365_BUSINESS_PREMIUM", "Microsoft 365 Business Standard", "office365", (*OFFICE_SUITE, "office_apps")),
    ("SPB", "Microsoft 365 Business Premium", "office365", (*OFFICE_SUITE, "office_apps")),
    ("EXCHANGESTANDARD", "Exchange Online (Plan 1)", "office365", ("exchange",)),
    ("DYN365_ENTERPRISE_SALES", "Dynamics 365 Sales Enterprise", "dynamics365", ("dynamics365",)),
    (
        "DYN365_ENTERPRISE_CUSTOMER_SERVICE",
        "Dynamics 365 Customer Service Enterprise",
        "dynamics365",
        ("dynamics365",),
    ),
    ("POWER_BI_PRO", "Power BI Pro", "other", ()),
)
