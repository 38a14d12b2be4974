"""The package version, in a leaf module so that modules inside the package can record it without importing
the package itself (which would close an import cycle through `attnpaths/__init__.py`)."""

__version__ = "0.1.0"
