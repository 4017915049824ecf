"""The plain functions behind the KFP components: paths and URIs in, artifacts written, scalars returned.

No kfp here: a component's body imports its step inside the task (where kfp's
runtime-only ``kfp.dsl`` has no ``component`` decorator), and tests call the
steps directly without a cluster.
"""
