"""The per-kind beat entry `agents.expire_stale_jobs` is replaced by the one stale-job
sweep (`core.sweep_stale_jobs`); django-celery-beat keeps schedule rows it no longer finds
in CELERY_BEAT_SCHEDULE, so the retired row is deleted here."""

from django.db import migrations


def retire(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="agents.expire_stale_jobs").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_agent_job_lifecycle"),
        ("django_celery_beat", "0001_initial"),
    ]

    operations = [migrations.RunPython(retire, migrations.RunPython.noop)]
