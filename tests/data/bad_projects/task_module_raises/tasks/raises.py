from flowmancer.task import Task, task
RATE = 1 / 0
