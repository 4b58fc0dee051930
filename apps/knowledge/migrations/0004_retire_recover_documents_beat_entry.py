"""The per-kind beat entry `knowledge.recover_documents` is replaced by the one stale-job
sweep (`core.sweep_stale_jobs`); django-celery-beat keeps schedule rows it no longer finds
in CELERY_BEAT_SCHEDULE, so the retired row is deleted here."""

from django.db import migrations


def retire(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="knowledge.recover_documents").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0003_document_job_lifecycle"),
        ("django_celery_beat", "0001_initial"),
    ]

    operations = [migrations.RunPython(retire, migrations.RunPython.noop)]
