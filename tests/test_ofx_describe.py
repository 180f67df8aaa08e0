"""The OFX plug-in as a host sees it: loaded through the test host (tests/ofx_host, written from the
OpenFX specification), its description read back through the property and parameter suites and
compared with the contract of issue 22 and with ``rerender propagate``'s own defaults."""
from __future__ import annotations

import argparse

import pytest

from ofx_host import ofx
from ofx_host.testing import bundle, run_scenario

CONTEXTS = (ofx.CONTEXT_FILTER, ofx.CONTEXT_GENERAL)


@pytest.fixture(scope="module")
def described(tmp_path_factory):
    out = run_scenario({"bundle": str(bundle()), "describe_only": True}, tmp_path_factory.mktemp("describe"))
    assert out.returncode == 0 and out.result is not None, f"the host process died ({out.returncode}): {out.stderr[-3000:]}"
    assert out.result["load_status"] == ofx.STAT_OK, ofx.status_name(out.result["load_status"])
    return {**out.result, **out.result["description"]}


def propagate_option(dest: str) -> argparse.Action:
    """The ``rerender propagate`` option with destination ``dest``, from the CLI's own parser."""
    from rerender.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return next(a for a in sub.choices["propagate"]._actions if a.dest == dest)


def choice(params: dict, name: str) -> tuple[list[str], str]:
    p = params[name]
    assert p["type"] == ofx.PARAM_CHOICE
    options = p["OfxParamPropChoiceOption"]
    return options, options[p["OfxParamPropDefault"][0]]


def test_identity_version_and_api(described):
    import rerender

    assert described["api"] == ofx.IMAGE_EFFECT_API and described["api_version"] == ofx.IMAGE_EFFECT_API_VERSION
    assert described["identifier"] == "org.rerender.Propagate"
    major, minor = (int(v) for v in rerender.__version__.split(".")[:2])
    assert described["version"] == [major, minor]
    effect = described["effect"]
    assert effect["OfxPropLabel"] == ["Rerender Propagate"]
    assert effect["OfxImageEffectPluginPropGrouping"] == ["Rerender"]


def test_contexts_depths_threading_and_temporal_access(described):
    effect = described["effect"]
    assert set(effect["OfxImageEffectPropSupportedContexts"]) == set(CONTEXTS)
    assert set(described["contexts"]) == set(CONTEXTS)   # DescribeInContext succeeded for both
    depths = effect["OfxImageEffectPropSupportedPixelDepths"]
    assert ofx.DEPTH_FLOAT in depths and ofx.DEPTH_BYTE in depths
    assert set(depths) <= {ofx.DEPTH_BYTE, ofx.DEPTH_SHORT, ofx.DEPTH_HALF, ofx.DEPTH_FLOAT}
    assert effect["OfxImageEffectPropTemporalClipAccess"] == [1]
    # the host may render from several threads at once (issue 22): one job per shot, the others wait
    assert effect["OfxImageEffectPluginRenderThreadSafety"] == [ofx.RENDER_FULLY_SAFE]


@pytest.mark.parametrize("context", CONTEXTS)
def test_clips(described, context):
    clips = described["contexts"][context]["clips"]
    assert set(clips) == {"Source", "Keys", "Matte", "Output"}
    assert clips["Matte"]["OfxImageClipPropOptional"] == [1]
    assert clips["Source"]["OfxImageClipPropOptional"] == [0]
    for name in ("Source", "Keys", "Matte"):
        assert clips[name]["OfxImageEffectPropTemporalClipAccess"] == [1], name
        assert clips[name]["OfxImageEffectPropSupportedComponents"], name
    assert set(clips["Output"]["OfxImageEffectPropSupportedComponents"]) >= {ofx.COMPONENTS_RGB, ofx.COMPONENTS_RGBA}


def test_the_description_follows_the_specification(described):
    # what the host checks while loading: the clips each context mandates (the filter context allows
    # only optional inputs besides Source), properties only where the spec puts them
    assert described["violations"] == []
    assert described["callback_errors"] == []
    for name, version, served in described["suites_asked"]:
        assert served, f"the plug-in asked for {name} v{version}, which this host does not serve"


@pytest.mark.parametrize("context", CONTEXTS)
def test_parameters_default_to_the_cli_defaults(described, context):
    from rerender.blend_methods import BLEND_METHODS
    from rerender.config import load
    from rerender.job import JobConfig
    from rerender.passes import PropagationConfig

    params = described["contexts"][context]["params"]
    job, prop = load(JobConfig), load(PropagationConfig)   # the defaults `rerender propagate` starts from
    assert {"keyFrames", "blend", "workingSize", "flow", "quality", "poisson", "matteFeather", "cuts",
            "outputAlpha"} <= set(params)
    for name, p in params.items():
        assert p["OfxParamPropScriptName"] == [name]

    assert params["keyFrames"]["type"] == ofx.PARAM_STRING and params["keyFrames"]["OfxParamPropDefault"] == [""]
    options, default = choice(params, "blend")
    assert options == list(BLEND_METHODS) and default == prop.blend
    options, default = choice(params, "flow")
    assert options == list(propagate_option("flow").choices) and default == job.flow
    assert params["workingSize"]["type"] == ofx.PARAM_INTEGER
    assert job.size is None and params["workingSize"]["OfxParamPropDefault"] == [0]   # 0 = the input's size
    assert params["poisson"]["type"] == ofx.PARAM_BOOLEAN
    assert params["poisson"]["OfxParamPropDefault"] == [int(prop.poisson)]
    assert params["matteFeather"]["type"] == ofx.PARAM_DOUBLE
    assert params["matteFeather"]["OfxParamPropDefault"] == [job.matte_feather]
    assert params["cuts"]["type"] == ofx.PARAM_STRING
    assert propagate_option("cuts").default is None and params["cuts"]["OfxParamPropDefault"] == [""]
    assert params["outputAlpha"]["type"] == ofx.PARAM_BOOLEAN
    assert params["outputAlpha"]["OfxParamPropDefault"] == [int(job.alpha)]
    options, default = choice(params, "quality")
    assert len(options) >= 1 and default == options[0]


def test_unload_after_describe(described):
    assert described["unload_status"] in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT)
    names = [a for a, _ in described["actions"]]
    assert names[:2] == [ofx.ACTION_LOAD, ofx.ACTION_DESCRIBE]
    assert names.count(ofx.ACTION_DESCRIBE_IN_CONTEXT) == 2 and names[-1] == ofx.ACTION_UNLOAD
