/* medloss.backends.cpu._kernels: the one-hot-free softmax statistics of medloss.backends.eager.softmax as a CPU kernel.
 *
 * Forward reads logits (B, C, N) and labels (B, N) once and returns, per sample and class, the sums
 *   TP_c = sum p_c [y = c],  PRED_c = sum v p_c^e,  TARGET_c = sum [y = c],  VOX_c = sum phi(p_y) [y = c]
 * (v = 0 at ignored voxels); backward reads them again, recomputes the softmax per block of BLK voxels in L1 and
 * writes dL/dx = p_c (v e k_c p_c^(e-1) - t) + [c = y] s_n (see medloss/backends/eager/softmax.py for the derivation).
 * Nothing logits-sized is allocated here: the only large buffer is the gradient, allocated by the caller.
 *
 * Plain C99 + POSIX threads, no torch headers (built by setup.py with the system compiler at install time; the
 * package falls back to the eager torch path when the module is missing). Loops are written for the compiler's
 * vectoriser (`#pragma omp simd`, enabled by -fopenmp-simd without any OpenMP runtime); on x86-64 an AVX2+FMA
 * clone is selected at load time. float32 uses the Cephes-style polynomial exp/log below (about 1 ulp), float64
 * the C library's.
 *
 * Bad input is reported, never read out of bounds: a label outside [0, C) that is not ignore_index, a
 * non-integer float label, or a non-finite logit returns a status code and the Python side raises the typed
 * error (it re-runs its own check to word the message).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLK 512
#define MAX_THREADS 256
#define ML_INLINE inline __attribute__((always_inline))

enum { LAB_I64 = 0, LAB_I32 = 1, LAB_I16 = 2, LAB_U8 = 3, LAB_I8 = 4, LAB_F32 = 5, LAB_F64 = 6 };
enum { ST_OK = 0, ST_NONFINITE = 1, ST_LABEL = 2, ST_NOMEM = 3, ST_ARGS = 4, ST_SOFT = 5 };
enum { VT_NONE = 0, VT_CE = 1, VT_FOCAL = 2, VT_EXPLOG = 3, VT_WASS = 4 };

typedef struct {
    const void *x;
    const void *y;
    int ycode, squared, vterm, gamma_kind, has_ignore, backward;
    int sigmoid, dense, check, soft; /* sigmoid kernel: dense (B, C, N) target?, check its values?, soft allowed? */
    int64_t B, C, N, nlab, ignore, nblk, blk_begin, blk_end; /* labels must lie in [0, nlab) */
    double gamma, vlo, vhi; /* voxel term: exponent and clamp range of log p_y */
    const double *matrix;   /* VT_WASS: the (C, C) cost matrix M, row = label */
    const double *coef; /* backward: (3, B, C) = k, a, u */
    void *grad;         /* backward: (B, C, N), the logits' type */
    double *acc;        /* forward: (3, B, C) = TP, PRED, VOX */
    int64_t *cnt;       /* forward: (B, C) = TARGET */
    void *scratch;
    int status;
} job_t;

/* Labels of one block as int32 class indices, -1 where ignored. Returns non-zero on a label that is neither a
 * class index in [0, C) nor ignore_index. */
#define LOAD_INT(T)                                                                                 \
    {                                                                                               \
        const T *y = (const T *)J->y + off;                                                         \
        _Pragma("omp simd reduction(| : bad)")                                                      \
        for (int j = 0; j < len; ++j) {                                                             \
            const int64_t v = (int64_t)y[j];                                                        \
            const int ign = (v == ignore) & has_ignore, ok = (uint64_t)v < (uint64_t)C;             \
            lab[j] = ign ? -1 : (ok ? (int32_t)v : 0);                                              \
            bad |= (!ign) & (!ok);                                                                  \
        }                                                                                           \
    }
#define LOAD_FLOAT(T)                                                                               \
    {                                                                                               \
        const T *y = (const T *)J->y + off;                                                         \
        _Pragma("omp simd reduction(| : bad)")                                                      \
        for (int j = 0; j < len; ++j) {                                                             \
            const double v = (double)y[j];                                                          \
            const int ign = (v == (double)ignore) & has_ignore;                                     \
            const int ok = (v >= 0) & (v < (double)C) & (v == floor(v));                            \
            lab[j] = ign ? -1 : (ok ? (int32_t)v : 0);                                              \
            bad |= (!ign) & (!ok);                                                                  \
        }                                                                                           \
    }

static ML_INLINE int load_labels(const job_t *J, int64_t b, int64_t n0, int len, int32_t *lab) {
    const int64_t off = b * J->N + n0, ignore = J->ignore, C = J->nlab;
    const int has_ignore = J->has_ignore;
    int bad = 0;
    switch (J->ycode) {
    case LAB_I64: LOAD_INT(int64_t) break;
    case LAB_I32: LOAD_INT(int32_t) break;
    case LAB_I16: LOAD_INT(int16_t) break;
    case LAB_U8: LOAD_INT(uint8_t) break;
    case LAB_I8: LOAD_INT(int8_t) break;
    case LAB_F32: LOAD_FLOAT(float) break;
    default: LOAD_FLOAT(double) break;
    }
    return bad;
}

/* exp for float32: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r
 * (Cephes expf coefficients), 2^n from the exponent bits. Inputs are clamped to [-87, 88] (the softmax only
 * evaluates x - max <= 0, where e^-87 ~ 1.6e-38 stands in for an underflowing term). */
static ML_INLINE float exp_f32(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } scale;
    scale.i = ((int32_t)n + 127) << 23;
    return p * scale.f;
}

/* log for positive normal float32: x = m 2^k with m in [sqrt(1/2), sqrt(2)), log(1 + f) by the Cephes logf
 * polynomial, k ln2 added in two parts. */
static ML_INLINE float log_f32(float x) {
    union { int32_t i; float f; } u;
    u.f = x;
    const int32_t k = ((u.i >> 23) & 0xff) - 127;
    u.i = (u.i & 0x007fffff) | 0x3f800000;
    float mant = u.f;
    const int big = mant > 1.41421356f;
    mant = big ? 0.5f * mant : mant;
    const float kf = (float)(k + big), f = mant - 1.0f, z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y += -2.12194440e-4f * kf;
    y += -0.5f * z;
    return f + y + 0.693359375f * kf;
}

/* One clone per x86-64 micro-architecture level (AVX-512, AVX2+FMA, baseline SSE2), picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define ML_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ML_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ML_CLONES
#endif

#define REAL float
#define SFX _f32
#define EXP exp_f32
#define LOG log_f32
#include "_softmax_body.h"
#include "_sigmoid_body.h"
#undef REAL
#undef SFX
#undef EXP
#undef LOG

#define REAL double
#define SFX _f64
#define EXP exp
#define LOG log
#include "_softmax_body.h"
#include "_sigmoid_body.h"
#undef REAL
#undef SFX
#undef EXP
#undef LOG

typedef struct { job_t job; int is_double; } task_t;

static void run_f32(job_t *J) {
    if (J->sigmoid) sigmoid_range_f32(J); else if (J->backward) backward_range_f32(J); else forward_range_f32(J);
}
static void run_f64(job_t *J) {
    if (J->sigmoid) sigmoid_range_f64(J); else if (J->backward) backward_range_f64(J); else forward_range_f64(J);
}

static void *worker(void *arg) {
    task_t *t = (task_t *)arg;
    if (t->is_double) run_f64(&t->job); else run_f32(&t->job);
    return NULL;
}

/* The host process's OpenMP runtime (the one torch's intra-op pool runs on), found by use_openmp(): running our
 * share-out on torch's own worker threads avoids competing with them (they spin for a while after each torch op,
 * and POSIX threads of ours would then share the cores with spinning threads). */
typedef void (*gomp_parallel_t)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*omp_int_t)(void);
static gomp_parallel_t gomp_parallel = NULL;
static omp_int_t omp_thread_num = NULL, omp_num_threads = NULL;

typedef struct { task_t *tasks; int ntasks; } team_t;

static void team_body(void *arg) {
    team_t *t = (team_t *)arg;
    const int tid = omp_thread_num(), nt = omp_num_threads();
    for (int i = tid; i < t->ntasks; i += nt) worker(&t->tasks[i]);
}

/* Split the B * nblk blocks into nthreads shares, run them on the OpenMP team when use_openmp() found one, else on
 * POSIX threads (the calling thread takes the first share); forward sums are per share and added up in share
 * order, so results do not depend on how many threads actually ran. Returns a status code. */
static int run(job_t proto, int is_double, int nthreads, double *acc, int64_t *cnt) {
    const int64_t total = proto.B * proto.nblk;
    const size_t real = is_double ? sizeof(double) : sizeof(float);
    const size_t scratch = (size_t)(proto.C + 12) * BLK * real + BLK * sizeof(int32_t) + 64;
    const size_t table = (size_t)(proto.B * proto.C);
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (nthreads > total) nthreads = (int)(total > 0 ? total : 1);
    task_t *tasks = calloc((size_t)nthreads, sizeof(task_t));
    pthread_t *ids = calloc((size_t)nthreads, sizeof(pthread_t));
    const size_t ntab = proto.sigmoid ? 5 : 3; /* forward tables: see softmax_tables / sigmoid_tables */
    char *mem = calloc((size_t)nthreads, scratch + table * (ntab * sizeof(double) + sizeof(int64_t)));
    int status = ST_OK;
    if (!tasks || !ids || !mem) { free(tasks); free(ids); free(mem); return ST_NOMEM; }
    int started = 1;
    for (int i = 0; i < nthreads; ++i) {
        char *base = mem + (size_t)i * (scratch + table * (ntab * sizeof(double) + sizeof(int64_t)));
        tasks[i].is_double = is_double;
        tasks[i].job = proto;
        tasks[i].job.blk_begin = total * i / nthreads;
        tasks[i].job.blk_end = total * (i + 1) / nthreads;
        tasks[i].job.acc = (double *)base;
        tasks[i].job.cnt = (int64_t *)(base + table * ntab * sizeof(double));
        tasks[i].job.scratch = base + table * (ntab * sizeof(double) + sizeof(int64_t));
    }
    if (nthreads == 1) {
        worker(&tasks[0]);
    } else if (gomp_parallel) {
        team_t team = {tasks, nthreads};
        gomp_parallel(team_body, &team, (unsigned)nthreads, 0);
    } else {
        for (int i = 1; i < nthreads; ++i) {
            if (pthread_create(&ids[i], NULL, worker, &tasks[i]) != 0) { /* run the rest here */
                for (int r = i; r < nthreads; ++r) worker(&tasks[r]);
                break;
            }
            started = i + 1;
        }
        worker(&tasks[0]);
        for (int i = 1; i < started; ++i) pthread_join(ids[i], NULL);
    }
    for (int i = 0; i < nthreads; ++i) {
        if (tasks[i].job.status > status) status = tasks[i].job.status;
        if (!proto.backward) {
            for (size_t k = 0; k < ntab * table; ++k) acc[k] += tasks[i].job.acc[k];
            for (size_t k = 0; k < table; ++k) cnt[k] += tasks[i].job.cnt[k];
        }
    }
    free(tasks); free(ids); free(mem);
    return status;
}

/* The fields both kernels share, from the Python arguments. */
static job_t new_job(int backward, unsigned long long xp, unsigned long long yp, int ycode, long long B, long long C,
                     long long N, int has_ignore, long long ignore, int squared) {
    job_t J;
    memset(&J, 0, sizeof J);
    J.x = (const void *)(uintptr_t)xp;
    J.y = (const void *)(uintptr_t)yp;
    J.ycode = ycode; J.squared = squared != 0; J.has_ignore = has_ignore != 0; J.backward = backward != 0;
    J.B = B; J.C = C; J.N = N; J.nlab = C; J.ignore = ignore; J.nblk = (N + BLK - 1) / BLK;
    return J;
}

/* Run a job without the GIL: forward sums into out (float64) and out2 (int64), or backward with coefficients out
 * and the gradient out2. */
static PyObject *launch(job_t J, int is_double, unsigned long long op, unsigned long long o2p, int nthreads) {
    int status;
    Py_BEGIN_ALLOW_THREADS
    if (J.backward) {
        J.coef = (const double *)(uintptr_t)op;
        J.grad = (void *)(uintptr_t)o2p;
        status = run(J, is_double, nthreads, NULL, NULL);
    } else {
        status = run(J, is_double, nthreads, (double *)(uintptr_t)op, (int64_t *)(uintptr_t)o2p);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(status);
}

/* Python binding. softmax_tables(backward, logits_ptr, is_double, labels_ptr, label_code, B, C, N, has_ignore,
 *   ignore_index, squared, voxel_term, gamma, log_lo, log_hi, matrix_ptr, out_ptr, out2_ptr, nthreads) -> status
 * voxel_term: 0 none, 1 cross-entropy, 2 focal, 3 explog (log p_y clamped to [log_lo, log_hi] in them), 4 the
 * Wasserstein error sum_c M[y, c] p_c with matrix_ptr a contiguous (C, C) float64 M (0 for the other terms).
 * forward:  out_ptr = (3, B, C) float64 zeros (TP, PRED, VOX), out2_ptr = (B, C) int64 zeros (TARGET)
 * backward: out_ptr = (3, B, C) float64 coefficients (k, a, u), out2_ptr = gradient (B, C, N), logits' type.
 * The caller guarantees contiguous CPU buffers of these shapes (medloss/backends/cpu/__init__.py). */
static PyObject *softmax_tables(PyObject *self, PyObject *args) {
    (void)self;
    int backward, is_double, ycode, has_ignore, squared, vterm, nthreads;
    unsigned long long xp, yp, mp, op, o2p;
    long long B, C, N, ignore;
    double gamma, vlo, vhi;
    if (!PyArg_ParseTuple(args, "iKiKiLLLiLiidddKKKi", &backward, &xp, &is_double, &yp, &ycode, &B, &C, &N,
                          &has_ignore, &ignore, &squared, &vterm, &gamma, &vlo, &vhi, &mp, &op, &o2p, &nthreads))
        return NULL;
    if (B < 1 || C < 1 || N < 1 || C > INT32_MAX || ycode < 0 || ycode > LAB_F64 || vterm < 0 || vterm > 4 ||
        !(vlo <= vhi) || ((vterm == VT_WASS) != (mp != 0)))
        return PyLong_FromLong(ST_ARGS);
    job_t J = new_job(backward, xp, yp, ycode, B, C, N, has_ignore, ignore, squared);
    J.vterm = vterm;
    J.gamma = gamma; J.vlo = vlo; J.vhi = vhi;
    J.matrix = (const double *)(uintptr_t)mp;
    J.gamma_kind = gamma == 2.0 ? 2 : gamma == 1.0 ? 1 : gamma == 0.0 ? 0 : 3;
    return launch(J, is_double, op, o2p, nthreads);
}

/* sigmoid_tables(backward, logits_ptr, is_double, target_ptr, target_code, dense, B, C, N, has_ignore,
 *   ignore_index, squared, check, voxel_term, gamma, soft, out_ptr, out2_ptr, nthreads) -> status
 * forward:  out_ptr = (5, B, C) float64 zeros (TP, PRED, TARGET, VPOS, VNEG), out2_ptr = (B, C) int64 zeros
 *           (VOXELS in [:, 0])
 * backward: out_ptr = (4, B, C) float64 coefficients (dL/dPRED, dL/dTP, dL/dVPOS, dL/dVNEG), out2_ptr = gradient.
 * dense: the target is (B, C, N) float32/float64 with values in {0, 1} ([0, 1] with soft) or ignore_index; else a
 * (B, N) label map of class indices (C = 1: values {0, 1}). voxel_term: 0 none, 1 BCE, 2 sigmoid focal (binary
 * targets); VPOS/VNEG are its sums over the positive (g) and negative (1 - g) parts (see _sigmoid_body.h).
 * Status ST_SOFT: a fractional target value without `soft` (the caller falls back or raises). */
static PyObject *sigmoid_tables(PyObject *self, PyObject *args) {
    (void)self;
    int backward, is_double, ycode, dense, has_ignore, squared, check, vterm, soft, nthreads;
    unsigned long long xp, yp, op, o2p;
    long long B, C, N, ignore;
    double gamma;
    if (!PyArg_ParseTuple(args, "iKiKiiLLLiLiiidiKKi", &backward, &xp, &is_double, &yp, &ycode, &dense, &B, &C, &N,
                          &has_ignore, &ignore, &squared, &check, &vterm, &gamma, &soft, &op, &o2p, &nthreads))
        return NULL;
    if (B < 1 || C < 1 || N < 1 || C > INT32_MAX || ycode < 0 || ycode > LAB_F64 || vterm < 0 || vterm > 2 ||
        (dense && ycode != LAB_F32 && ycode != LAB_F64))
        return PyLong_FromLong(ST_ARGS);
    job_t J = new_job(backward, xp, yp, ycode, B, C, N, has_ignore, ignore, squared);
    J.sigmoid = 1; J.dense = dense != 0; J.check = check != 0; J.nlab = C > 1 ? C : 2;
    J.vterm = vterm; J.gamma = gamma; J.gamma_kind = gamma == 2.0 ? 2 : 3; J.soft = soft != 0;
    return launch(J, is_double, op, o2p, nthreads);
}

/* use_openmp(path) -> bool: bind to the OpenMP runtime already loaded from `path` (libgomp, or an LLVM/Intel
 * runtime exporting the GOMP entry points); never loads a new one (RTLD_NOLOAD). False: keep POSIX threads. */
static PyObject *use_openmp(PyObject *self, PyObject *args) {
    (void)self;
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!lib) Py_RETURN_FALSE;
    gomp_parallel_t par = (gomp_parallel_t)dlsym(lib, "GOMP_parallel");
    omp_int_t num = (omp_int_t)dlsym(lib, "omp_get_thread_num");
    omp_int_t count = (omp_int_t)dlsym(lib, "omp_get_num_threads");
    if (!par || !num || !count) Py_RETURN_FALSE;
    omp_thread_num = num;
    omp_num_threads = count;
    gomp_parallel = par;
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"sigmoid_tables", sigmoid_tables, METH_VARARGS, "Sigmoid region tables (forward) or their gradient."},
    {"use_openmp", use_openmp, METH_VARARGS, "Run on the already-loaded OpenMP runtime at this path."},
    {"softmax_tables", softmax_tables, METH_VARARGS, "One-hot-free softmax tables (forward) or their gradient."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "medloss CPU kernels.", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
