"""The unseen application: command line, demo and local federations."""
