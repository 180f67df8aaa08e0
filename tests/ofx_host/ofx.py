"""OpenFX names and numbers the test host uses, written from the published specification
(ofxCore.h, ofxImageEffect.h, ofxParam.h, ofxProperty.h and the suite headers): status codes,
action, suite, property and value strings, and the C layouts of the structs a host exchanges
with a plug-in. The values are the API's facts; the Python spelling is this host's own.
"""
from __future__ import annotations

import ctypes

# status codes (ofxCore.h)
STAT_OK = 0
STAT_FAILED = 1
STAT_ERR_FATAL = 2
STAT_ERR_UNKNOWN = 3
STAT_ERR_MISSING_HOST_FEATURE = 4
STAT_ERR_UNSUPPORTED = 5
STAT_ERR_EXISTS = 6
STAT_ERR_FORMAT = 7
STAT_ERR_MEMORY = 8
STAT_ERR_BAD_HANDLE = 9
STAT_ERR_BAD_INDEX = 10
STAT_ERR_VALUE = 11
STAT_REPLY_YES = 12
STAT_REPLY_NO = 13
STAT_REPLY_DEFAULT = 14

STATUS_NAMES = {v: k for k, v in dict(globals()).items() if k.startswith("STAT_")}


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"status {status}")


IMAGE_EFFECT_API = "OfxImageEffectPluginAPI"
IMAGE_EFFECT_API_VERSION = 1

# actions
ACTION_LOAD = "OfxActionLoad"
ACTION_DESCRIBE = "OfxActionDescribe"
ACTION_UNLOAD = "OfxActionUnload"
ACTION_CREATE_INSTANCE = "OfxActionCreateInstance"
ACTION_DESTROY_INSTANCE = "OfxActionDestroyInstance"
ACTION_INSTANCE_CHANGED = "OfxActionInstanceChanged"
ACTION_BEGIN_INSTANCE_CHANGED = "OfxActionBeginInstanceChanged"
ACTION_END_INSTANCE_CHANGED = "OfxActionEndInstanceChanged"
ACTION_DESCRIBE_IN_CONTEXT = "OfxImageEffectActionDescribeInContext"
ACTION_GET_REGION_OF_DEFINITION = "OfxImageEffectActionGetRegionOfDefinition"
ACTION_GET_REGIONS_OF_INTEREST = "OfxImageEffectActionGetRegionsOfInterest"
ACTION_GET_TIME_DOMAIN = "OfxImageEffectActionGetTimeDomain"
ACTION_GET_FRAMES_NEEDED = "OfxImageEffectActionGetFramesNeeded"
ACTION_GET_CLIP_PREFERENCES = "OfxImageEffectActionGetClipPreferences"
ACTION_IS_IDENTITY = "OfxImageEffectActionIsIdentity"
ACTION_RENDER = "OfxImageEffectActionRender"
ACTION_BEGIN_SEQUENCE_RENDER = "OfxImageEffectActionBeginSequenceRender"
ACTION_END_SEQUENCE_RENDER = "OfxImageEffectActionEndSequenceRender"

# suites (name, version)
SUITE_PROPERTY = "OfxPropertySuite"
SUITE_IMAGE_EFFECT = "OfxImageEffectSuite"
SUITE_PARAMETER = "OfxParameterSuite"
SUITE_MEMORY = "OfxMemorySuite"
SUITE_MULTITHREAD = "OfxMultiThreadSuite"
SUITE_MESSAGE = "OfxMessageSuite"
SUITE_PROGRESS = "OfxProgressSuite"

# object types (kOfxPropType values)
TYPE_HOST = "OfxTypeImageEffectHost"
TYPE_EFFECT = "OfxTypeImageEffect"
TYPE_EFFECT_INSTANCE = "OfxTypeImageEffectInstance"
TYPE_CLIP = "OfxTypeClip"
TYPE_IMAGE = "OfxTypeImage"
TYPE_PARAMETER = "OfxTypeParameter"
TYPE_PARAMETER_INSTANCE = "OfxTypeParameterInstance"

# contexts
CONTEXT_FILTER = "OfxImageEffectContextFilter"
CONTEXT_GENERAL = "OfxImageEffectContextGeneral"
CONTEXT_GENERATOR = "OfxImageEffectContextGenerator"
CONTEXT_TRANSITION = "OfxImageEffectContextTransition"
CONTEXT_PAINT = "OfxImageEffectContextPaint"
CONTEXT_RETIMER = "OfxImageEffectContextRetimer"

# pixel depths and components
DEPTH_NONE = "OfxBitDepthNone"
DEPTH_BYTE = "OfxBitDepthByte"
DEPTH_SHORT = "OfxBitDepthShort"
DEPTH_HALF = "OfxBitDepthHalf"
DEPTH_FLOAT = "OfxBitDepthFloat"
COMPONENTS_NONE = "OfxImageComponentNone"
COMPONENTS_RGBA = "OfxImageComponentRGBA"
COMPONENTS_RGB = "OfxImageComponentRGB"
COMPONENTS_ALPHA = "OfxImageComponentAlpha"
CHANNELS = {COMPONENTS_RGBA: 4, COMPONENTS_RGB: 3, COMPONENTS_ALPHA: 1}

OPAQUE = "OfxImageOpaque"
PREMULTIPLIED = "OfxImageAlphaPremultiplied"
UNPREMULTIPLIED = "OfxImageAlphaUnPremultiplied"
FIELD_NONE = "OfxFieldNone"

# render thread safety
RENDER_UNSAFE = "OfxImageEffectRenderUnsafe"
RENDER_INSTANCE_SAFE = "OfxImageEffectRenderInstanceSafe"
RENDER_FULLY_SAFE = "OfxImageEffectRenderFullySafe"

# change reasons
CHANGE_USER_EDITED = "OfxChangeUserEdited"
CHANGE_PLUGIN_EDITED = "OfxChangePluginEdited"

# message types
MESSAGE_FATAL = "OfxMessageFatal"
MESSAGE_ERROR = "OfxMessageError"
MESSAGE_WARNING = "OfxMessageWarning"
MESSAGE_MESSAGE = "OfxMessageMessage"
MESSAGE_LOG = "OfxMessageLog"
MESSAGE_QUESTION = "OfxMessageQuestion"

# parameter types
PARAM_INTEGER = "OfxParamTypeInteger"
PARAM_DOUBLE = "OfxParamTypeDouble"
PARAM_BOOLEAN = "OfxParamTypeBoolean"
PARAM_CHOICE = "OfxParamTypeChoice"
PARAM_STR_CHOICE = "OfxParamTypeStrChoice"
PARAM_RGBA = "OfxParamTypeRGBA"
PARAM_RGB = "OfxParamTypeRGB"
PARAM_DOUBLE_2D = "OfxParamTypeDouble2D"
PARAM_INTEGER_2D = "OfxParamTypeInteger2D"
PARAM_DOUBLE_3D = "OfxParamTypeDouble3D"
PARAM_INTEGER_3D = "OfxParamTypeInteger3D"
PARAM_STRING = "OfxParamTypeString"
PARAM_CUSTOM = "OfxParamTypeCustom"
PARAM_GROUP = "OfxParamTypeGroup"
PARAM_PAGE = "OfxParamTypePage"
PARAM_PUSH_BUTTON = "OfxParamTypePushButton"

# the values a parameter of each type holds: (kind, count) with kind "int", "double", "string"
# or None (no value: groups, pages, buttons). Bytes parameters (API 1.5) are not hosted here.
PARAM_VALUES = {
    PARAM_INTEGER: ("int", 1), PARAM_BOOLEAN: ("int", 1), PARAM_CHOICE: ("int", 1),
    PARAM_INTEGER_2D: ("int", 2), PARAM_INTEGER_3D: ("int", 3),
    PARAM_DOUBLE: ("double", 1), PARAM_DOUBLE_2D: ("double", 2), PARAM_DOUBLE_3D: ("double", 3),
    PARAM_RGB: ("double", 3), PARAM_RGBA: ("double", 4),
    PARAM_STRING: ("string", 1), PARAM_CUSTOM: ("string", 1), PARAM_STR_CHOICE: ("string", 1),
    PARAM_GROUP: (None, 0), PARAM_PAGE: (None, 0), PARAM_PUSH_BUTTON: (None, 0),
}

# clip names the specification fixes
CLIP_OUTPUT = "Output"
CLIP_SOURCE = "Source"

# -- C layouts --------------------------------------------------------------------------------

OfxStatus = ctypes.c_int
OfxTime = ctypes.c_double


class OfxRectD(ctypes.Structure):
    _fields_ = [("x1", ctypes.c_double), ("y1", ctypes.c_double), ("x2", ctypes.c_double), ("y2", ctypes.c_double)]


class OfxRangeD(ctypes.Structure):
    _fields_ = [("min", ctypes.c_double), ("max", ctypes.c_double)]


FETCH_SUITE = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int)


class OfxHost(ctypes.Structure):
    _fields_ = [("host", ctypes.c_void_p), ("fetchSuite", FETCH_SUITE)]


MAIN_ENTRY = ctypes.CFUNCTYPE(OfxStatus, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
SET_HOST = ctypes.CFUNCTYPE(None, ctypes.POINTER(OfxHost))


class OfxPlugin(ctypes.Structure):
    _fields_ = [("pluginApi", ctypes.c_char_p), ("apiVersion", ctypes.c_int),
                ("pluginIdentifier", ctypes.c_char_p), ("pluginVersionMajor", ctypes.c_uint),
                ("pluginVersionMinor", ctypes.c_uint), ("setHost", ctypes.c_void_p),
                ("mainEntry", ctypes.c_void_p)]


THREAD_FUNCTION = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p)
