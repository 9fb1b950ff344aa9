"""The only modules with side effects on the cluster, each behind a Protocol."""
