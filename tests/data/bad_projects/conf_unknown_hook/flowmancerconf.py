from flowmancer import hookimpl

@hookimpl
def flowmancer_job_strat(job):
    pass
