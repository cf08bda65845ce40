"""What ``bench/`` and ``tests/`` both use: deploying the app and waiting for its
readiness (`harness.serving`), synthetic audio (`harness.audio`) and tiny random
models (`harness.models`).

Neither the service nor its image uses this package; ``tests/`` may import it,
``bench/`` may import it, and it imports neither.
"""
