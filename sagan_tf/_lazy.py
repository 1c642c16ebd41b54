"""Package faces that load their submodules on first use, so importing a package stays cheap."""

import importlib


def lazy_exports(package, exports):
    """The `__getattr__` and `__dir__` of a package whose public names live in its submodules.

    Args:
      package: the package's `__name__`.
      exports: {public name: submodule name (relative to the package)}.

    Returns:
      (`__getattr__`, `__dir__`) to assign at the package's top level (PEP 562).
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
