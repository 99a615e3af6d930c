"""Celery workers: ``aidetect.worker.app:app`` and the task ``aidetect.score_batch``.
Importing this package does not import torch."""
