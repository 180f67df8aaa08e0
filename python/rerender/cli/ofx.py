"""``rerender ofx install|uninstall|cache``: the OpenFX plugin bundle for Nuke, Resolve/Fusion, Natron
and Flame (:mod:`rerender.ofx`)."""
from __future__ import annotations

import os
import shutil

from .common import add_command, group


def add(sub) -> None:
    p = add_command(
        sub, "ofx", help="install or remove the OpenFX plugin (Nuke, Resolve/Fusion, Natron, Flame)",
        description="The 'Rerender Propagate' OpenFX plugin: install copies Rerender.ofx.bundle where compositors "
                    "look and records this Python as the plugin's worker; uninstall removes only a bundle that "
                    "rerender installed; cache shows (or with --clear empties) the plugin's job cache.")
    ofx_sub = p.add_subparsers(dest="ofx_command", metavar="ACTION", required=True)
    i = add_command(ofx_sub, "install", help="copy the bundle into a plugin folder",
                    description="Copy Rerender.ofx.bundle into DIR, else the first writable of $OFX_PLUGIN_PATH's "
                                "folders, the system OpenFX folder (/usr/OFX/Plugins on Linux), or a per-user "
                                "folder (then add it to OFX_PLUGIN_PATH). A bundle rerender did not install is "
                                "never replaced.")
    group(i, "input/output").add_argument("--dir", metavar="DIR", default=None, help="plugin folder to install into")
    group(i, "general").add_argument("--python", metavar="PYTHON", default=None,
                   help="interpreter that runs the worker (default: this one); $RERENDER_OFX_PYTHON overrides "
                        "it at render time")
    i.set_defaults(func=install)
    u = add_command(ofx_sub, "uninstall", help="remove the bundle rerender installed",
                    description="Remove Rerender.ofx.bundle from DIR, else every bundle rerender installed "
                                "(a bundle it did not install is left alone).")
    group(u, "input/output").add_argument("--dir", metavar="DIR", default=None, help="plugin folder to remove the bundle from")
    u.set_defaults(func=uninstall)
    c = add_command(ofx_sub, "cache", help="where the plugin's jobs are cached (--clear empties it)",
                    description="Print the plugin's cache folder ($RERENDER_OFX_CACHE, else the per-user cache "
                                "folder) and its size; --clear removes it (close the hosts' renders first).")
    group(c, "general").add_argument("--clear", action="store_true", help="remove the cache folder")
    c.set_defaults(func=cache)


def install(args) -> int:
    from ..ofx import install as do_install, user_plugin_dir

    dest, why = do_install(args.dir, python=args.python)
    args.reporter.log(f"installed {dest} ({why})")
    if why == "per-user folder":
        folder = user_plugin_dir()
        args.reporter.log(f"hosts only look in {folder} when it is listed in OFX_PLUGIN_PATH: add\n"
                          f"  export OFX_PLUGIN_PATH=\"{folder}{os.pathsep}$OFX_PLUGIN_PATH\"\n"
                          "to the environment the compositor starts in (shell profile, launcher script)")
    args.reporter.done(str(dest))
    return 0


def uninstall(args) -> int:
    from ..ofx import uninstall as do_uninstall

    removed = do_uninstall(args.dir)
    for r in removed:
        args.reporter.log(f"removed {r}")
    if not removed:
        args.reporter.log("no bundle installed by rerender was found")
    args.reporter.done(", ".join(map(str, removed)))
    return 0


def cache(args) -> int:
    from ..ofx import cache_root

    root = cache_root()
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0
    if args.clear and root.is_dir():
        shutil.rmtree(root)
        args.reporter.log(f"removed {root} ({size / 1e6:.1f} MB)")
    else:
        args.reporter.log(f"{root}: {size / 1e6:.1f} MB")
    args.reporter.done(str(root))
    return 0
