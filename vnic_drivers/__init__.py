"""quantum-vnic: the hypervisor side of oVirt's OpenStack Quantum (Neutron) vNICs.

VDSM runs the thin scripts in ``hooks/``; each calls :func:`vnic_drivers.hook_main.main`
with its hook point. See README.md for the map of the package.
"""

__version__ = "0.1.0"
