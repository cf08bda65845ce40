"""Client tools for a stemscribe server (streaming client, command line)."""
