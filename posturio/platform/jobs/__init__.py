"""Background jobs as the components use them: declare an actor (actors), enqueue it after
the transaction commits (outbox), and the per-process resources an actor runs with
(runtime). The worker process that runs them is posturio.workers."""
