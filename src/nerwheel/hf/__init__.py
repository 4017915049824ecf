"""What a nerwheel model folder gives Hugging Face ``transformers``: its model class, its pipeline, its model card.

:func:`nerwheel.hf.folder.write_hf_files` (called whenever a model folder is
written) copies :mod:`nerwheel.hf.modeling_nerwheel`,
:mod:`nerwheel.hf.pipeline_nerwheel` and the nerwheel modules they import into
the folder and registers them in ``config.json``, so
``pipeline("token-classification", model=folder, trust_remote_code=True)``
returns what ``nerwheel predict`` returns.
"""
