"""The platform operators' side: support accounts and offboarding (the services behind
`create_support_user` and `offboard_partner`)."""
