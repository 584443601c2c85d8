"""The durable job queue: leased job rows, the workers that run them, the trainer processes they spawn."""
