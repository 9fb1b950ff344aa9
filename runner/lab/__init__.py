"""The lab: a real Keystone cluster in containers on one machine, for the demo and the tests.

Its only definition is compose/docker-compose.yml; the lab reads that file,
renders the configuration it mounts, and brings it up through the Docker SDK
(no compose plugin needed).
"""
