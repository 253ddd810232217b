"""Training: state, step, losses, the loop, checkpoints, preemption, data parallelism, logging.

Entry point: p2p.train.loop.train_and_evaluate (behind `p2p-train` / `python -m p2p.main`).
"""
