"""Command-line front door of the micromarketing engine."""
