"""The watcher: one cycle = refresh allocations → reconcile orphans → policies → actions."""
