"""The tenant upgrade engine: planner, safety gate, durable state machine, worker and demo.

Entry points (the CLI, the portal, the demo) call `tenanttls.migration.service`;
the worker (`tenanttls.migration.worker.Worker`) runs the steps of
`tenanttls.migration.steps` through `tenanttls.migration.runner.run_step`.
"""
