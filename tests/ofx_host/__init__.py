"""An OpenFX host for the tests of the Rerender OFX plug-in, written from the OpenFX specification.

:mod:`.host` loads a bundle and drives it; :mod:`.run` runs one scenario in a child process (so a
crashing plug-in fails a test instead of taking pytest down) and reports what happened as JSON.
"""
from .host import Host, bundle_binary
from .images import ClipData
from .instance import Instance

__all__ = ["ClipData", "Host", "Instance", "bundle_binary"]
