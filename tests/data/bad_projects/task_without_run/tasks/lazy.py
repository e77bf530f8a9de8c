from flowmancer.task import Task, task

@task
class Lazy(Task):
    pass
