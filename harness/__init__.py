"""What ``bench/`` and ``tests/`` both use: deploying the app and waiting for its
readiness (`harness.serving`), synthetic audio (`harness.audio`), tiny random
models (`harness.models`) and live sessions run over a whole recording
(`harness.streaming`).

Neither the service nor its image uses this package; ``tests/`` may import it,
``bench/`` may import it, and it imports neither.
"""
