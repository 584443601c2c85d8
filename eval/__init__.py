"""How versions are measured: probes, recall and recognition scoring, retention and continual-learning
metrics, the brain-rot health panel, statistics and reports. A library: the evaluator process
(`trainers.evaluate`) and the training loop score models with it; its torch-free modules (probes,
metrics, statistics, reports) also run in the control plane. It imports nothing from `trainers`
but `trainers.contracts`.
"""
