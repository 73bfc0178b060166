"""Publish the first version of the community guidelines, so there is always a current one."""

from django.db import migrations

DEFAULT_TEXT = """\
## Our community guidelines

Peer Circles is a place to be heard and to listen. These guidelines keep it safe and kind for everyone.

1. **Every voice counts equally.** Take your turn, and make room for others to take theirs.
2. **Speak from your own experience.** Share what happened to you and how you feel. Please don't give advice unless someone asks for it.
3. **What's shared in the circle stays in the circle.** Never repeat or copy what others say outside it.
4. **Keep it anonymous.** Use your pseudonym. Don't share names, addresses, phone numbers or other details that identify you or anyone else.
5. **No judgment, no harassment.** Disagree kindly. Insults, threats and hateful words are never okay.
6. **This is peer support, not a crisis service.** If you or someone else is in danger, please contact local emergency services or a crisis line.
7. **Facilitators help, they don't rule.** Facilitation rotates. Anything a facilitator does is visible to the whole circle.
"""


def publish_first_version(apps, schema_editor):
    guidelines = apps.get_model("circles", "CommunityGuidelines")
    if not guidelines.objects.exists():
        guidelines.objects.create(version=1, text=DEFAULT_TEXT, summary_of_changes="First version.")


class Migration(migrations.Migration):
    dependencies = [("circles", "0001_initial")]

    operations = [migrations.RunPython(publish_first_version, migrations.RunPython.noop)]
