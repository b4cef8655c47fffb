"""TenSEAL contexts and keys, and the worker processes that do a holder's HE work."""
