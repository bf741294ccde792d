"""Composite foreign keys: the database itself refuses rows whose customer or partner disagree.

Django has no composite foreign keys, so they are added here: real deferrable foreign keys on
PostgreSQL, triggers on SQLite (which cannot add a foreign key to an existing table).
"""

from django.db import migrations

# (name, child table, child columns, parent table, parent columns)
COMPOSITE_KEYS = [
    ("subscription_customer_partner_fk", "customers_subscription", ("customer_id", "partner_id"),
     "customers_customer", ("id", "partner_id")),
    ("enduser_customer_partner_fk", "customers_enduser", ("customer_id", "partner_id"),
     "customers_customer", ("id", "partner_id")),
    ("supportrequest_customer_partner_fk", "customers_supportrequest", ("customer_id", "partner_id"),
     "customers_customer", ("id", "partner_id")),
    ("assignment_customer_partner_fk", "customers_licenseassignment", ("customer_id", "partner_id"),
     "customers_customer", ("id", "partner_id")),
    # An assignment's user and subscription belong to the assignment's customer (SPEC §1).
    ("assignment_user_customer_fk", "customers_licenseassignment", ("user_id", "customer_id"),
     "customers_enduser", ("id", "customer_id")),
    ("assignment_subscription_customer_fk", "customers_licenseassignment", ("subscription_id", "customer_id"),
     "customers_subscription", ("id", "customer_id")),
    # Replaces activity's plain foreign key to the user (declared with db_constraint=False).
    ("activity_user_partner_fk", "customers_activity", ("user_id", "partner_id"),
     "customers_enduser", ("id", "partner_id")),
]


def _postgresql(name, child, columns, parent, parent_columns):
    on_delete = " ON DELETE CASCADE" if child == "customers_activity" else ""
    return [
        f"ALTER TABLE {child} ADD CONSTRAINT {name} FOREIGN KEY ({', '.join(columns)}) "
        f"REFERENCES {parent} ({', '.join(parent_columns)}){on_delete} DEFERRABLE INITIALLY DEFERRED"
    ]


def _sqlite(name, child, columns, parent, parent_columns):
    missing = " AND ".join(f"p.{pc} = NEW.{c}" for c, pc in zip(columns, parent_columns, strict=True))
    body = (
        f"FOR EACH ROW WHEN NOT EXISTS (SELECT 1 FROM {parent} p WHERE {missing}) "
        f"BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: {name}'); END"
    )
    return [
        f"CREATE TRIGGER {name}_insert BEFORE INSERT ON {child} {body}",
        f"CREATE TRIGGER {name}_update BEFORE UPDATE OF {', '.join(columns)} ON {child} {body}",
    ]


def add_keys(apps, schema_editor):
    build = _postgresql if schema_editor.connection.vendor == "postgresql" else _sqlite
    for key in COMPOSITE_KEYS:
        for sql in build(*key):
            schema_editor.execute(sql)


def drop_keys(apps, schema_editor):
    for name, child, *_ in COMPOSITE_KEYS:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {child} DROP CONSTRAINT {name}")
        else:
            schema_editor.execute(f"DROP TRIGGER {name}_insert")
            schema_editor.execute(f"DROP TRIGGER {name}_update")


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]

    operations = [migrations.RunPython(add_keys, drop_keys)]
