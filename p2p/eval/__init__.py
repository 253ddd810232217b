"""Evaluation: metrics, FID/KID, protocols and baselines, reports (behind `p2p-evaluate`)."""
