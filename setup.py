"""Packages are found automatically: calozoo and every subpackage, the command line's tools/ as calozoo_tools, and
the top-level zoo_configs/ and artifacts/ shipped inside the wheel as calozoo/_zoo_configs and calozoo/_artifacts
(the registry looks there in an installed wheel and at the top level in a checkout). Metadata: setup.cfg."""

from setuptools import find_namespace_packages, find_packages, setup

# Top-level data folders -> where they go inside the installed package.
SHIPPED_DATA = {"calozoo._zoo_configs": "zoo_configs", "calozoo._artifacts": "artifacts"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages = find_packages(include=["calozoo", "calozoo.*"])
    package_dir = {"calozoo": "calozoo"}
    for found in find_packages(include=["tools", "tools.*"]):
        name = "calozoo_tools" + found[len("tools"):]
        packages.append(name)
        package_dir[name] = found.replace(".", "/")
    for package, folder in SHIPPED_DATA.items():
        subfolders = find_namespace_packages(where=folder)
        for sub in [""] + [f".{s}" for s in subfolders]:
            packages.append(package + sub)
            package_dir[package + sub] = folder + sub.replace(".", "/")
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={
        "calozoo.data": ["binning/*.xml"],
        **{package: ["*.yaml", "*.npz", "*.json", "*.md"]
           for package in PACKAGES if package.startswith(tuple(SHIPPED_DATA))},
    },
)
