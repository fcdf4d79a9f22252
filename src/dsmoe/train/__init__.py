"""Training: config, optimizer and schedules, one accumulated step, resume policy, the loop, metrics."""
