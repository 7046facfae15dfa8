"""The development harness: what tests, bench and acmectl need to run services on loopback.

ports (free_port), environment (clean_environment, from the settings models), processes
(ServiceProcess), http2_tap and raw_http2 (HTTP/2 on the wire). Never installed in images.
"""
