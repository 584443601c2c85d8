"""The worker process: it claims leased job and health-check rows (`lease.py`), runs a trainer or
an evaluator process for each (`trainer_process.py`), and records what they report (`job_log.py`,
`evaluation.py`) before the health gate (`service.services.gate`) decides on a new version."""
