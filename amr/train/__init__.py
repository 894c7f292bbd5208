"""The jitted, sharded, scanned chunk; the run loop; train state; held-out passes; host memory; processes."""
