from flowmancer.task import Task, task

@task
class DoSomething(Task):
    def run(self):
        pass
