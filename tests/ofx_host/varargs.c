/* The OFX suite functions whose C signatures end in "...": the message suite's message,
 * setPersistentMessage, and the parameter suite's value accessors. A ctypes callback cannot read
 * C variadic arguments, so these small trampolines read them with <stdarg.h> (the message through
 * vsnprintf, parameter values by the parameter's kind) and hand plain arguments to the host's
 * Python callbacks installed with ofxhost_install. Written for the test host from the OpenFX
 * specification (ofxMessage.h, ofxParam.h); nothing here is specific to one plug-in.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAT_OK 0
#define STAT_FAILED 1
#define STAT_ERR_UNSUPPORTED 5
#define STAT_ERR_MEMORY 8
#define STAT_ERR_BAD_HANDLE 9

/* the kinds of values a parameter holds (what its varargs are) */
#define KIND_INT 1     /* int* to get, int to set: integer, boolean, choice, integer 2D/3D */
#define KIND_DOUBLE 2  /* double* / double: double, RGB, RGBA, double 2D/3D */
#define KIND_STRING 3  /* char** / char*: string, custom, string choice */
#define MAX_VALUES 4

typedef int (*message_fn)(void *handle, const char *type, const char *id, const char *text, int persistent);
typedef int (*clear_fn)(void *handle);
typedef int (*kind_fn)(void *param, int *kind, int *count);
/* which: 0 value, 1 value at time, 2 derivative at time, 3 integral over [time, time2] */
typedef int (*get_fn)(void *param, int which, double time, double time2, int *ints, double *doubles,
                      const char **text);
typedef int (*set_fn)(void *param, int at_time, double time, const int *ints, const double *doubles,
                      const char *text);

static message_fn on_message;
static clear_fn on_clear;
static kind_fn on_kind;
static get_fn on_get;
static set_fn on_set;

void ofxhost_install(message_fn m, clear_fn c, kind_fn k, get_fn g, set_fn s)
{
    on_message = m;
    on_clear = c;
    on_kind = k;
    on_get = g;
    on_set = s;
}

static int post(void *handle, const char *type, const char *id, const char *format, va_list ap, int persistent)
{
    if (!on_message)
        return STAT_FAILED;
    if (!format)
        return on_message(handle, type, id, "", persistent);
    va_list sizing;
    va_copy(sizing, ap);
    int n = vsnprintf(NULL, 0, format, sizing);
    va_end(sizing);
    if (n < 0)
        return STAT_FAILED;
    char *text = malloc((size_t)n + 1);
    if (!text)
        return STAT_ERR_MEMORY;
    vsnprintf(text, (size_t)n + 1, format, ap);
    int status = on_message(handle, type, id, text, persistent);
    free(text);
    return status;
}

int ofxhost_message(void *handle, const char *type, const char *id, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int status = post(handle, type, id, format, ap, 0);
    va_end(ap);
    return status;
}

int ofxhost_set_persistent_message(void *handle, const char *type, const char *id, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int status = post(handle, type, id, format, ap, 1);
    va_end(ap);
    return status;
}

int ofxhost_clear_persistent_message(void *handle)
{
    return on_clear ? on_clear(handle) : STAT_FAILED;
}

static int get_values(void *param, int which, double time, double time2, va_list ap)
{
    int kind = 0, count = 0;
    int status = on_kind ? on_kind(param, &kind, &count) : STAT_ERR_BAD_HANDLE;
    if (status != STAT_OK)
        return status;
    if (count < 0 || count > MAX_VALUES)
        return STAT_ERR_UNSUPPORTED;
    if (which >= 2 && kind != KIND_DOUBLE)
        return STAT_ERR_UNSUPPORTED; /* only double-valued parameters have derivatives and integrals */
    int ints[MAX_VALUES] = {0};
    double doubles[MAX_VALUES] = {0};
    const char *text = NULL;
    status = on_get(param, which, time, time2, ints, doubles, &text);
    if (status != STAT_OK)
        return status;
    for (int i = 0; i < count; ++i) {
        if (kind == KIND_INT)
            *va_arg(ap, int *) = ints[i];
        else if (kind == KIND_DOUBLE)
            *va_arg(ap, double *) = doubles[i];
        else if (kind == KIND_STRING)
            *va_arg(ap, const char **) = text;
    }
    return STAT_OK;
}

int ofxhost_param_get_value(void *param, ...)
{
    va_list ap;
    va_start(ap, param);
    int status = get_values(param, 0, 0.0, 0.0, ap);
    va_end(ap);
    return status;
}

int ofxhost_param_get_value_at_time(void *param, double time, ...)
{
    va_list ap;
    va_start(ap, time);
    int status = get_values(param, 1, time, 0.0, ap);
    va_end(ap);
    return status;
}

int ofxhost_param_get_derivative(void *param, double time, ...)
{
    va_list ap;
    va_start(ap, time);
    int status = get_values(param, 2, time, 0.0, ap);
    va_end(ap);
    return status;
}

int ofxhost_param_get_integral(void *param, double time1, double time2, ...)
{
    va_list ap;
    va_start(ap, time2);
    int status = get_values(param, 3, time1, time2, ap);
    va_end(ap);
    return status;
}

static int set_values(void *param, int at_time, double time, va_list ap)
{
    int kind = 0, count = 0;
    int status = on_kind ? on_kind(param, &kind, &count) : STAT_ERR_BAD_HANDLE;
    if (status != STAT_OK)
        return status;
    if (count < 0 || count > MAX_VALUES)
        return STAT_ERR_UNSUPPORTED;
    int ints[MAX_VALUES] = {0};
    double doubles[MAX_VALUES] = {0};
    const char *text = NULL;
    for (int i = 0; i < count; ++i) {
        if (kind == KIND_INT)
            ints[i] = va_arg(ap, int);
        else if (kind == KIND_DOUBLE)
            doubles[i] = va_arg(ap, double);
        else if (kind == KIND_STRING)
            text = va_arg(ap, const char *);
    }
    return on_set(param, at_time, time, ints, doubles, text);
}

int ofxhost_param_set_value(void *param, ...)
{
    va_list ap;
    va_start(ap, param);
    int status = set_values(param, 0, 0.0, ap);
    va_end(ap);
    return status;
}

int ofxhost_param_set_value_at_time(void *param, double time, ...)
{
    va_list ap;
    va_start(ap, time);
    int status = set_values(param, 1, time, ap);
    va_end(ap);
    return status;
}
