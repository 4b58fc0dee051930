"""Conversations made by scheduled tasks before they had their own source were labelled
`chat`: relabel those the tasks app knows (an execution's or a task's own conversation).
Conversations started by a trigger of an agent are not linked to the trigger, so they
keep their label."""

from django.db import migrations


def relabel(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    TaskExecution = apps.get_model("tasks", "TaskExecution")
    ScheduledTask = apps.get_model("tasks", "ScheduledTask")
    ids = set(
        TaskExecution.objects.exclude(conversation=None).values_list("conversation_id", flat=True)
    )
    ids |= set(
        ScheduledTask.objects.exclude(conversation=None).values_list("conversation_id", flat=True)
    )
    ids_list = list(ids)
    for start in range(0, len(ids_list), 500):
        Conversation.objects.filter(id__in=ids_list[start : start + 500], source="chat").update(
            source="task"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0001_initial"),
        ("conversations", "0002_conversation_source_task_trigger"),
    ]

    operations = [migrations.RunPython(relabel, migrations.RunPython.noop)]
