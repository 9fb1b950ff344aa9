"""keystone-upgrade: zero-downtime rolling upgrades of a Keystone cluster."""
