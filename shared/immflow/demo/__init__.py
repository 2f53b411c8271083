"""``immflow demo``: sample media made on the spot, and the runner that follows it through the pipeline."""
