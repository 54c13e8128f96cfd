"""Background jobs: the job store, the queue and the worker process."""
