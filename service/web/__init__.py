"""HTTP: routes only. Each route reads, calls `service`, and answers."""
