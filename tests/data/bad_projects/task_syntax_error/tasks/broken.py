from flowmancer.task import Task, task
def oops(:
    pass
