"""Orchestration: runs built from a config, above the library (the way ``open_clip_train`` sits above ``open_clip``).

- :mod:`~polymodal.runs.train`: ``train_run``, data -> model -> strategy -> Trainer -> report.
- :mod:`~polymodal.runs.bridge`: ``bridge_run``, Ex-MCR bridges between two contrastive spaces.
- :mod:`~polymodal.runs.rundir`: the run directory every kind of run writes, and ``load_run`` to read it back.
- :mod:`~polymodal.runs.inference`: a trained run at work: ``evaluate_saved_run``, ``predict``, ``embed``.
- :mod:`~polymodal.runs.retrieval`: ``polymodal index build`` and ``retrieve``.
- :mod:`~polymodal.runs.bench`: ``polymodal bench overhead``.
- :mod:`~polymodal.runs.provenance`: what produced a run and how long its phases took.

Nothing below this package imports it; the Python API (:mod:`polymodal.api`) and the CLI sit above it.
"""
