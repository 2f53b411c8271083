"""What the three functions do, one module per concern.

* `upload.on_upload`: an OSS event → the IMM tasks the pipeline starts for it.
* `results.on_task_done` / `results.handle_result`: a task's result → ledger, outputs, follow-ups, manifest.
* `reconcile.reconcile`: tasks whose notification never came → GetTask → the same path as a notification.
* `runtime.begin`: the per-instance services and the per-invocation budget every handler starts from.
"""
