"""The project's container images: which to build, how, and from what base."""
