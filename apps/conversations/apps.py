from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    verbose_name = "Conversations and runs"

    def ready(self) -> None:
        # Imported here, once the apps are loaded: the runner and the Celery tasks are
        # given to the executor, so the run service never imports them (no cycle).
        from apps.conversations import runner, schema, tasks  # noqa: F401
        from apps.conversations.executor import ExecutorPorts, executor
        from apps.conversations.services import RUN_JOB_KIND
        from apps.core.jobs import job_kind_register
        from apps.providers.services import model_clients_share_this_loop

        executor.install(
            ExecutorPorts(
                run_next=runner.run_next,
                resume=runner.resume,
                execute_started=runner.execute_started,
                enqueue=tasks.enqueue_drive,
                # The server's loop outlives every run: model calls made on it share SDK
                # clients (and their keep-alive connections).
                on_bind=model_clients_share_this_loop,
            )
        )
        job_kind_register(RUN_JOB_KIND)  # the one stale sweep ends runs of dead processes
