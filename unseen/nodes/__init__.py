"""unseen's servers: the data holder node and the key-less coordinator."""
