"""The worker: claim ready jobs, run them, apply failure handlers, report. Used by `torc run` and `torc worker`."""
