"""acmectl: call the acme services from a terminal, and run the local stack without Docker."""
