"""Generated wire code of proto package ``unseen.v1`` (``scripts/gen_protos.py``); do not edit."""
