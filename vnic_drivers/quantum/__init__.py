"""The hooks' side of the Quantum (Neutron) v2.0 API: the client and its authentication."""
