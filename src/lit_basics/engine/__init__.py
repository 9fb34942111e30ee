"""Fast paths for small networks: many models of one architecture trained at once, and the runtime settings
that decide the speed of small networks."""
