"""Packaging for the learning-to-rank TFX pipeline (console script: ``ltr``)."""

from setuptools import find_packages, setup

setup(
    name="tfx-ltr",
    version="0.1.0",
    description="A TFX learning-to-rank pipeline: raw logs to a registered TF-Ranking model.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=["pipeline", "pipeline.*", "components", "components.*", "modules", "modules.*", "schemas"]
    ),
    package_data={"schemas": ["*.pbtxt"], "pipeline": ["*.yaml"]},
    include_package_data=True,
    # Runtime dependencies are pinned in requirements.lock (installed with --no-deps);
    # see README "Dependencies".
    install_requires=[],
    entry_points={"console_scripts": ["ltr = pipeline.cli:main"]},
)
