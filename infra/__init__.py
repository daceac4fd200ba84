"""The Pulumi program and its pieces: config, clients, dynamic providers, components."""
