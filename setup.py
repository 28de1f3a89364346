# setuptools reads everything else from pyproject.toml; cffi_modules has no pyproject form yet.
from setuptools import setup

setup(cffi_modules=["cffi_build.py:ffibuilder"])
