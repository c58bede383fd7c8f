"""The CPPN itself: its config, the network, its coordinate inputs and the reactivity settings."""
