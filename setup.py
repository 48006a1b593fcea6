"""quantum-vnic: VDSM hooks and vNIC drivers for OpenStack Quantum networks on oVirt hosts."""

import os

from setuptools import find_packages, setup

setup(
    name="quantum-vnic",
    version="0.1.0",
    description="oVirt/VDSM host side of OpenStack Quantum (Neutron) vNICs",
    long_description=open("README.md", encoding="utf-8").read() if os.path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["vnic_drivers", "vnic_drivers.*"]),
    install_requires=["lxml"],
    extras_require={
        "host": ["pyroute2", "ovs", "requests"],
        "test": ["pytest", "pyroute2", "ovs", "vermin", "libvirt-python", "requests"],
    },
    entry_points={
        "console_scripts": [
            "quantum-vnic = vnic_drivers.cli:main",
            "quantum-vnic-privileged = vnic_drivers.host.privileged:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Networking",
    ],
)
