"""Configuration options that only say where and how fast a stage runs, not what it computes.

Changing them reruns nothing: the workflow leaves them out of its rule params, and training
checkpoints and softmax stores do not record them. Dependency-free, so Snakemake can read it
while parsing the workflow.
"""

#: Fine-tuning / baseline-training options that do not change the weights of an epoch.
TRAIN_RUNTIME_OPTIONS = ("epochs", "workers", "device")
#: Inference options that do not change the stored probabilities (shards only name the outputs).
INFERENCE_RUNTIME_OPTIONS = ("device", "workers", "shards")
