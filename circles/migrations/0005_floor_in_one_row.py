"""The floor in one row: raised hands move into FloorState.hands (one read and one
write per transition instead of three tables), and the columns that let the sweep
settle only the floors that need it (due_at, presence_serial, settled_serial), and
shown_version for `tick`."""

from django.conf import settings
from django.db import migrations, models


def hands_into_rows(apps, schema_editor):
    FloorState = apps.get_model("circles", "FloorState")
    FloorHand = apps.get_model("circles", "FloorHand")
    for row in FloorState.objects.iterator():
        raised = FloorHand.objects.filter(floor=row).order_by("raised_at", "pk")
        row.hands = [
            {
                "member_id": hand.member_id,
                "raised_at": hand.raised_at.isoformat(),
                "behind": sorted(hand.behind),
            }
            for hand in raised
        ]
        # Settle every floor once under the new sweep, and show it as it stands.
        row.presence_serial = 1
        row.shown_version = row.version
        row.save(update_fields=["hands", "presence_serial", "shown_version"])


class Migration(migrations.Migration):
    dependencies = [
        ("circles", "0004_turn_taking"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="floorstate",
            name="due_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="floorstate",
            name="hands",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="floorstate",
            name="presence_serial",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="floorstate",
            name="settled_serial",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="floorstate",
            name="shown_version",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name="floorstate",
            index=models.Index(
                condition=models.Q(("presence_serial__gt", models.F("settled_serial"))),
                fields=["session"],
                name="circles_floor_presence_moved",
            ),
        ),
        migrations.RunPython(hands_into_rows, migrations.RunPython.noop),
        migrations.DeleteModel(name="FloorHand"),
    ]
