"""unseen's library: plans, SQL front end, crypto, layout, sources, client."""
