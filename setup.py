"""tfsynth: synthetic data for vision pre-training research (TensorFlow 2 / Keras 3).

Install for development with the exact versions we test against:
    pip install -c constraints.txt -e ".[test]"
"""
from setuptools import find_packages, setup

# Direct dependencies with the ranges we support; constraints.txt pins the whole tested set.
INSTALL_REQUIRES = [
    "tensorflow==2.21.*",
    "keras>=3.15,<3.16",
    "tensorflow-datasets==4.9.10",
    "apache-beam==2.77.*",
    "mlcroissant>=1.1,<1.2",
    "importlib_resources>=6",
    "tensorboard==2.21.*",
    "tensorflow-graphics==2021.12.3",
    "trimesh==5.2.*",
    "pyrender==0.1.45",
    "manifold3d==3.5.*",
    "fast-simplification==0.2.*",
    "numpy>=2.0,<2.5",
    "numba>=0.68,<0.69",
    "scipy>=1.17,<1.18",
    "scikit-learn>=1.9,<1.10",
    "Pillow>=12,<13",
    "tqdm>=4.66",
    "matplotlib>=3.10,<3.12",
    "h5py>=3.14,<3.17",
    "pycocotools>=2.0.11,<2.1",
]

setup(
    name="tfsynth",
    version="0.1.0",
    description="Synthetic image datasets (TFDS builders), pre-training and evaluation for vision research",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["tfsynth*", "tfds_builders*", "train*", "eval*", "experiments*", "mrcnn",
                                    "mrcnn.*"]),
    package_data={"tfds_builders": ["*/*.md", "*/*.bib", "*/*.txt"], "tfsynth": ["fractals/data/*.csv"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "gpu": ["tensorflow[and-cuda]==2.21.*"],
        "test": ["pytest>=9,<10", "pytest-xdist>=3.8,<4", "dill>=0.4", "ruff>=0.16,<0.17"],
    },
)
