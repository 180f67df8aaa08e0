/* A minimal OpenFX image effect with a known answer, used to check the test host itself
 * (tests/test_ofx_host_selfcheck.py): output(t) = gain * Source(t - offset), pixel by pixel, read and
 * written through kOfxImagePropData / kOfxImagePropRowBytes / kOfxImagePropBounds as the spec lays
 * images out. Parameters: offset (int, default 1), gain (double, default 2), note (string; "fail"
 * makes render post an error message and fail). The few declarations below are written from the
 * OpenFX specification for this file only.
 */
#include <stddef.h>
#include <string.h>

typedef int OfxStatus;
typedef struct OfxPropertySetStruct *Props;
typedef struct OfxHost {
    Props host;
    const void *(*fetchSuite)(Props host, const char *name, int version);
} OfxHost;
typedef struct OfxPlugin {
    const char *pluginApi;
    int apiVersion;
    const char *pluginIdentifier;
    unsigned int pluginVersionMajor, pluginVersionMinor;
    void (*setHost)(OfxHost *host);
    OfxStatus (*mainEntry)(const char *action, const void *handle, Props inArgs, Props outArgs);
} OfxPlugin;
typedef struct { double x1, y1, x2, y2; } RectD;

typedef struct {
    OfxStatus (*setPointer)(Props, const char *, int, void *);
    OfxStatus (*setString)(Props, const char *, int, const char *);
    OfxStatus (*setDouble)(Props, const char *, int, double);
    OfxStatus (*setInt)(Props, const char *, int, int);
    OfxStatus (*setPointerN)(Props, const char *, int, void *const *);
    OfxStatus (*setStringN)(Props, const char *, int, const char *const *);
    OfxStatus (*setDoubleN)(Props, const char *, int, const double *);
    OfxStatus (*setIntN)(Props, const char *, int, const int *);
    OfxStatus (*getPointer)(Props, const char *, int, void **);
    OfxStatus (*getString)(Props, const char *, int, char **);
    OfxStatus (*getDouble)(Props, const char *, int, double *);
    OfxStatus (*getInt)(Props, const char *, int, int *);
    OfxStatus (*getPointerN)(Props, const char *, int, void **);
    OfxStatus (*getStringN)(Props, const char *, int, char **);
    OfxStatus (*getDoubleN)(Props, const char *, int, double *);
    OfxStatus (*getIntN)(Props, const char *, int, int *);
    OfxStatus (*reset)(Props, const char *);
    OfxStatus (*getDimension)(Props, const char *, int *);
} PropertySuite;

typedef struct {
    OfxStatus (*getPropertySet)(void *effect, Props *props);
    OfxStatus (*getParamSet)(void *effect, void **params);
    OfxStatus (*clipDefine)(void *effect, const char *name, Props *props);
    OfxStatus (*clipGetHandle)(void *effect, const char *name, void **clip, Props *props);
    OfxStatus (*clipGetPropertySet)(void *clip, Props *props);
    OfxStatus (*clipGetImage)(void *clip, double time, const RectD *region, Props *image);
    OfxStatus (*clipReleaseImage)(Props image);
    OfxStatus (*clipGetRegionOfDefinition)(void *clip, double time, RectD *bounds);
    int (*abort)(void *effect);
} ImageEffectSuite;

typedef struct {
    OfxStatus (*paramDefine)(void *params, const char *type, const char *name, Props *props);
    OfxStatus (*paramGetHandle)(void *params, const char *name, void **param, Props *props);
    OfxStatus (*paramSetGetPropertySet)(void *params, Props *props);
    OfxStatus (*paramGetPropertySet)(void *param, Props *props);
    OfxStatus (*paramGetValue)(void *param, ...);
    OfxStatus (*paramGetValueAtTime)(void *param, double time, ...);
} ParameterSuite;

typedef struct {
    OfxStatus (*message)(void *handle, const char *type, const char *id, const char *format, ...);
} MessageSuite;

typedef struct {
    OfxStatus (*start)(void *effect, const char *label);
    OfxStatus (*update)(void *effect, double progress);
    OfxStatus (*end)(void *effect);
} ProgressSuite;

static OfxHost *gHost;
static const PropertySuite *gProps;
static const ImageEffectSuite *gEffect;
static const ParameterSuite *gParams;
static const MessageSuite *gMessage;
static const ProgressSuite *gProgress;

#define OK 0
#define FAILED 1
#define MISSING 4
#define DEFAULT 14

static void set_host(OfxHost *host) { gHost = host; }

static OfxStatus load(void)
{
    if (!gHost || !gHost->fetchSuite)
        return MISSING;
    gProps = gHost->fetchSuite(gHost->host, "OfxPropertySuite", 1);
    gEffect = gHost->fetchSuite(gHost->host, "OfxImageEffectSuite", 1);
    gParams = gHost->fetchSuite(gHost->host, "OfxParameterSuite", 1);
    gMessage = gHost->fetchSuite(gHost->host, "OfxMessageSuite", 1);
    gProgress = gHost->fetchSuite(gHost->host, "OfxProgressSuite", 1);
    return (gProps && gEffect && gParams && gMessage && gProgress) ? OK : MISSING;
}

static OfxStatus describe(void *effect)
{
    Props p;
    gEffect->getPropertySet(effect, &p);
    gProps->setString(p, "OfxPropLabel", 0, "Host Self Check");
    gProps->setString(p, "OfxImageEffectPropSupportedContexts", 0, "OfxImageEffectContextFilter");
    gProps->setString(p, "OfxImageEffectPropSupportedContexts", 1, "OfxImageEffectContextGeneral");
    gProps->setString(p, "OfxImageEffectPropSupportedPixelDepths", 0, "OfxBitDepthFloat");
    gProps->setString(p, "OfxImageEffectPropSupportedPixelDepths", 1, "OfxBitDepthByte");
    gProps->setInt(p, "OfxImageEffectPropTemporalClipAccess", 0, 1);
    gProps->setInt(p, "OfxImageEffectPropSupportsTiles", 0, 0);
    gProps->setString(p, "OfxImageEffectPluginRenderThreadSafety", 0, "OfxImageEffectRenderFullySafe");
    /* a strict host's answers: a property no effect descriptor has (kOfxStatErrUnknown), an index
     * beyond a property's dimension (kOfxStatErrBadIndex), a value of the wrong type (kOfxStatErrValue) */
    int n = 0, v = 0;
    if (gProps->setInt(p, "OfxSelfCheckNoSuchProperty", 0, 1) != 3)
        return FAILED;
    if (gProps->getInt(p, "OfxImageEffectPropSupportsTiles", 1, &v) != 10)
        return FAILED;
    if (gProps->setString(p, "OfxImageEffectPropSupportsTiles", 0, "yes") != 11)
        return FAILED;
    if (gProps->getDimension(p, "OfxImageEffectPropSupportedContexts", &n) != OK || n != 2)
        return FAILED;
    return OK;
}

static OfxStatus describe_in_context(void *effect)
{
    Props c, q;
    void *params;
    gEffect->clipDefine(effect, "Source", &c);
    gProps->setString(c, "OfxImageEffectPropSupportedComponents", 0, "OfxImageComponentRGB");
    gProps->setString(c, "OfxImageEffectPropSupportedComponents", 1, "OfxImageComponentRGBA");
    gProps->setInt(c, "OfxImageEffectPropTemporalClipAccess", 0, 1);
    gEffect->clipDefine(effect, "Output", &c);
    gProps->setString(c, "OfxImageEffectPropSupportedComponents", 0, "OfxImageComponentRGB");
    gProps->setString(c, "OfxImageEffectPropSupportedComponents", 1, "OfxImageComponentRGBA");
    gEffect->getParamSet(effect, &params);
    gParams->paramDefine(params, "OfxParamTypeInteger", "offset", &q);
    gProps->setInt(q, "OfxParamPropDefault", 0, 1);
    gParams->paramDefine(params, "OfxParamTypeDouble", "gain", &q);
    gProps->setDouble(q, "OfxParamPropDefault", 0, 2.0);
    gParams->paramDefine(params, "OfxParamTypeString", "note", &q);
    gProps->setString(q, "OfxParamPropDefault", 0, "");
    return OK;
}

static OfxStatus frames_needed(void *effect, Props in, Props out)
{
    double t, range[2];
    int offset;
    void *params, *param;
    gProps->getDouble(in, "OfxPropTime", 0, &t);
    gEffect->getParamSet(effect, &params);
    gParams->paramGetHandle(params, "offset", &param, NULL);
    gParams->paramGetValueAtTime(param, t, &offset);
    range[0] = range[1] = t - offset;
    gProps->setDoubleN(out, "OfxImageClipPropFrameRange_Source", 2, range);
    return OK;
}

typedef struct {
    char *data;
    int rowBytes, bounds[4], channels, bytes;
} View;

static int view(Props img, View *v)
{
    char *depth, *comps;
    if (gProps->getPointer(img, "OfxImagePropData", 0, (void **)&v->data) || gProps->getInt(img, "OfxImagePropRowBytes", 0, &v->rowBytes) ||
        gProps->getIntN(img, "OfxImagePropBounds", 4, v->bounds))
        return 0;
    gProps->getString(img, "OfxImageEffectPropPixelDepth", 0, &depth);
    v->bytes = strcmp(depth, "OfxBitDepthFloat") == 0 ? 4 : 1;
    gProps->getString(img, "OfxImageEffectPropComponents", 0, &comps);
    v->channels = strcmp(comps, "OfxImageComponentRGBA") == 0 ? 4 : 3;
    return 1;
}

static char *pixel(const View *v, int x, int y)
{
    return v->data + (ptrdiff_t)(y - v->bounds[1]) * v->rowBytes + (ptrdiff_t)(x - v->bounds[0]) * v->channels * v->bytes;
}

static OfxStatus render(void *effect, Props in)
{
    double t, gain;
    int offset;
    char *note;
    void *params, *param, *src, *dst;
    Props simg, dimg;
    gProps->getDouble(in, "OfxPropTime", 0, &t);
    gEffect->getParamSet(effect, &params);
    gParams->paramGetHandle(params, "offset", &param, NULL);
    gParams->paramGetValueAtTime(param, t, &offset);
    gParams->paramGetHandle(params, "gain", &param, NULL);
    gParams->paramGetValueAtTime(param, t, &gain);
    gParams->paramGetHandle(params, "note", &param, NULL);
    gParams->paramGetValueAtTime(param, t, &note);
    if (strcmp(note, "fail") == 0) {
        gMessage->message(effect, "OfxMessageError", NULL, "selfcheck failed at %g with gain %.2f (%s)", t, gain, note);
        return FAILED;
    }
    gProgress->start(effect, "self check");
    gEffect->clipGetHandle(effect, "Source", &src, NULL);
    gEffect->clipGetHandle(effect, "Output", &dst, NULL);
    if (gEffect->clipGetImage(src, t - offset, NULL, &simg) != OK) {
        gMessage->message(effect, "OfxMessageError", NULL, "no Source frame at %g", t - offset);
        gProgress->end(effect);
        return FAILED;
    }
    if (gEffect->clipGetImage(dst, t, NULL, &dimg) != OK) {
        gEffect->clipReleaseImage(simg);
        gProgress->end(effect);
        return FAILED;
    }
    View s, d;
    OfxStatus status = OK;
    if (!view(simg, &s) || !view(dimg, &d) || s.channels != d.channels || s.bytes != d.bytes) {
        status = FAILED;
    } else {
        for (int y = d.bounds[1]; y < d.bounds[3]; ++y) {
            for (int x = d.bounds[0]; x < d.bounds[2]; ++x) {
                char *sp = pixel(&s, x, y), *dp = pixel(&d, x, y);
                for (int c = 0; c < d.channels; ++c) {
                    if (d.bytes == 4) {
                        ((float *)dp)[c] = (float)(gain * ((float *)sp)[c]);
                    } else {
                        double v = gain * ((unsigned char *)sp)[c] + 0.5;
                        ((unsigned char *)dp)[c] = (unsigned char)(v > 255 ? 255 : v);
                    }
                }
            }
            if (gProgress->update(effect, (double)(y - d.bounds[1] + 1) / (d.bounds[3] - d.bounds[1])) != OK ||
                gEffect->abort(effect)) {
                status = FAILED;
                break;
            }
        }
    }
    gEffect->clipReleaseImage(simg);
    gEffect->clipReleaseImage(dimg);
    gProgress->end(effect);
    return status;
}

static OfxStatus main_entry(const char *action, const void *handle, Props in, Props out)
{
    void *effect = (void *)handle;
    if (strcmp(action, "OfxActionLoad") == 0)
        return load();
    if (!gProps)
        return MISSING;
    if (strcmp(action, "OfxActionDescribe") == 0)
        return describe(effect);
    if (strcmp(action, "OfxImageEffectActionDescribeInContext") == 0)
        return describe_in_context(effect);
    if (strcmp(action, "OfxImageEffectActionGetFramesNeeded") == 0)
        return frames_needed(effect, in, out);
    if (strcmp(action, "OfxImageEffectActionRender") == 0)
        return render(effect, in);
    return DEFAULT;
}

static OfxPlugin gPlugin = {"OfxImageEffectPluginAPI", 1, "org.rerender.tests.HostSelfCheck", 1, 0, set_host, main_entry};

__attribute__((visibility("default"))) int OfxGetNumberOfPlugins(void) { return 1; }
__attribute__((visibility("default"))) OfxPlugin *OfxGetPlugin(int nth) { return nth == 0 ? &gPlugin : NULL; }
