"""Training: config, optimizer and schedules, one accumulated step, checkpoints, the loop."""
