/* kernels.cu -- the CUDA backend's kernels: correct, simple fp32 first (kernels.h). Row operations run
 * one block per row with tree reductions of fixed shape; parameter gradients are column sums in chunks
 * of NL_CU_COL_ROWS rows, added chunk by chunk in order; scalar gradients are chunk sums in double,
 * added in order by one thread. Attention's softmax steps are here; its products are in backend.c. No
 * kernel is fused yet. */
#include "cuda/kernels.h"
#include "cuda/plan.h"
#include "normlab.h"

#include <cuda_runtime.h>
#include <math.h>

static void check_launch(const char *what) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) nl_cu_fail(what, cudaGetErrorString(e));
}
#define LAUNCHED() check_launch(__func__)

static unsigned row_grid(size_t N) { return N < NL_CU_MAX_GRID ? (unsigned)(N ? N : 1) : (unsigned)NL_CU_MAX_GRID; }

/* ---------------------------------------------------------------- block reductions */

/* The sum (or max) over the block of each thread's v; every thread gets it. blockDim.x is a power of
 * two <= 1024; the tree has a fixed shape, so the result does not depend on timing. */
template <class T> __device__ T block_sum(T v) {
    __shared__ T sh[1024];
    __syncthreads(); /* sh may still be read by a previous call */
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    return sh[0];
}

__device__ float block_max(float v) {
    __shared__ float sh[1024];
    __syncthreads();
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    return sh[0];
}

/* ---------------------------------------------------------------- column and scalar reductions */

/* part[chunk * C + c] = sum over the chunk's rows n of f(n, c) */
template <class F> __global__ void col_partial(float *part, size_t N, int C, size_t chunks, F f) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (size_t ch = blockIdx.y; ch < chunks; ch += gridDim.y) {
        const size_t n0 = ch * NL_CU_COL_ROWS, n1 = n0 + NL_CU_COL_ROWS < N ? n0 + NL_CU_COL_ROWS : N;
        float s = 0.0f;
        for (size_t n = n0; n < n1; n++) s += f(n, c);
        part[ch * C + c] = s;
    }
}

/* out[c] (+)= the chunk sums in chunk order */
__global__ void col_finish(float *out, const float *part, size_t chunks, int C, int accumulate) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (size_t ch = 0; ch < chunks; ch++) s += part[ch * C + c];
    out[c] = accumulate ? out[c] + s : s;
}

/* out[c] += sum_n f(n, c) for c < C (accumulate = 0: out[c] = the sum) */
template <class F> static void colsum_of(float *out, size_t N, int C, F f, int accumulate) {
    const size_t chunks = nl_cu_col_chunks(N);
    float *part = (float *)nl_cu_scratch(chunks * (size_t)C * sizeof(float));
    const dim3 grid((C + NL_CU_THREADS - 1) / NL_CU_THREADS, chunks < 65535 ? (unsigned)chunks : 65535u);
    col_partial<<<grid, NL_CU_THREADS>>>(part, N, C, chunks, f);
    col_finish<<<(C + NL_CU_THREADS - 1) / NL_CU_THREADS, NL_CU_THREADS>>>(out, part, chunks, C, accumulate);
    check_launch("column sum");
}

enum { TERM_CHUNK = 16384 };

/* part[k] = sum of f(i) over chunk k of `chunk` indices, in double */
template <class F> __global__ void term_partial(double *part, size_t n, size_t chunk, F f) {
    const size_t k = blockIdx.x, a = k * chunk, b = a + chunk < n ? a + chunk : n;
    double s = 0.0;
    for (size_t i = a + threadIdx.x; i < b; i += blockDim.x) s += (double)f(i);
    s = block_sum<double>(s);
    if (threadIdx.x == 0) part[k] = s;
}

__global__ void scalar_finish(float *dst, const double *part, size_t k, float scale) {
    double s = 0.0;
    for (size_t i = 0; i < k; i++) s += part[i];
    dst[0] += (float)(scale * s);
}

/* dst[0] += scale * sum_{i < n} f(i), on the device */
template <class F> static void scalar_sum_of(float *dst, size_t n, F f, float scale) {
    const size_t k = (n + TERM_CHUNK - 1) / TERM_CHUNK;
    double *part = (double *)nl_cu_scratch((k ? k : 1) * sizeof(double));
    if (k) term_partial<<<(unsigned)k, NL_CU_THREADS>>>(part, n, TERM_CHUNK, f);
    scalar_finish<<<1, 1>>>(dst, part, k, scale);
    check_launch("scalar sum");
}

struct Ident {
    const float *x;
    int ld;
    __device__ float operator()(size_t n, int c) const { return x[n * ld + c]; }
};
struct Prod { /* a[i] * b[i] over flat or (n, c) indices */
    const float *a, *b;
    int C;
    __device__ float operator()(size_t n, int c) const { return a[n * C + c] * b[n * C + c]; }
    __device__ float operator()(size_t i) const { return a[i] * b[i]; }
};
struct Value {
    const float *x;
    int sq;
    __device__ float operator()(size_t i) const { return sq ? x[i] * x[i] : x[i]; }
};

/* ---------------------------------------------------------------- LayerNorm / RMSNorm */

__global__ void norm_fwd_k(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                           float scale, int ln, float eps, size_t N, int C) {
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C;
        float m = 0.0f;
        if (ln) {
            float s = 0.0f;
            for (int i = threadIdx.x; i < C; i += blockDim.x) s += x[i];
            m = block_sum<float>(s) / (float)C;
        }
        float v = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x) v += (x[i] - m) * (x[i] - m);
        const float r = 1.0f / sqrtf(block_sum<float>(v) / (float)C + eps);
        float *y = out + n * C;
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            y[i] = scale * ((x[i] - m) * r * w[i] + (ln && b ? b[i] : 0.0f));
        if (threadIdx.x == 0) mean[n] = m, rstd[n] = r;
    }
}

__global__ void norm_bwd_k(float *dinp, const float *dout, const float *inp, const float *w, const float *mean,
                           const float *rstd, float scale, int ln, size_t N, int C) {
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C, *g = dout + n * C;
        const float m = mean[n], r = rstd[n];
        float a = 0.0f, b = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x) {
            const float gh = scale * g[i] * w[i];
            a += gh;
            b += gh * (x[i] - m) * r;
        }
        const float mgh = ln ? block_sum<float>(a) / (float)C : 0.0f, mghxh = block_sum<float>(b) / (float)C;
        float *dx = dinp + n * C;
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            dx[i] += r * (scale * g[i] * w[i] - mgh - (x[i] - m) * r * mghxh);
    }
}

struct NormDW {
    const float *x, *g, *mean, *rstd;
    float scale;
    int C;
    __device__ float operator()(size_t n, int c) const {
        return scale * g[n * C + c] * (x[n * C + c] - mean[n]) * rstd[n];
    }
};
struct ScaledIdent {
    const float *x;
    float scale;
    int C;
    __device__ float operator()(size_t n, int c) const { return scale * x[n * C + c]; }
};

extern "C" void nl_cu_norm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                   const float *b, float scale, int type, float eps, size_t N, int C) {
    norm_fwd_k<<<row_grid(N), nl_cu_row_threads(C)>>>(out, mean, rstd, inp, w, b, scale, type == NL_LAYERNORM, eps, N, C);
    LAUNCHED();
}

extern "C" void nl_cu_norm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                    const float *w, const float *mean, const float *rstd, float scale, int type,
                                    size_t N, int C) {
    norm_bwd_k<<<row_grid(N), nl_cu_row_threads(C)>>>(dinp, dout, inp, w, mean, rstd, scale, type == NL_LAYERNORM, N, C);
    LAUNCHED();
    colsum_of(dw, N, C, NormDW{ inp, dout, mean, rstd, scale, C }, 1);
    if (db) colsum_of(db, N, C, ScaledIdent{ dout, scale, C }, 1);
}

/* ---------------------------------------------------------------- ScaleNorm */

__global__ void scalenorm_fwd_k(float *out, float *rstd, const float *inp, const float *g, float scale, float eps,
                                size_t N, int C) {
    const float k = scale * g[0];
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x) ss += x[i] * x[i];
        const float r = 1.0f / sqrtf(block_sum<float>(ss) + eps);
        for (int i = threadIdx.x; i < C; i += blockDim.x) out[n * C + i] = k * x[i] * r;
        if (threadIdx.x == 0) rstd[n] = r;
    }
}

__global__ void scalenorm_bwd_k(float *dinp, const float *dout, const float *inp, const float *g, const float *rstd,
                                float scale, size_t N, int C) {
    const float k = scale * g[0];
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C, *d = dout + n * C;
        const float r = rstd[n];
        float dot = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x) dot += d[i] * x[i] * r;
        dot = block_sum<float>(dot);
        for (int i = threadIdx.x; i < C; i += blockDim.x) dinp[n * C + i] += k * r * (d[i] - x[i] * r * dot);
    }
}

struct DotRstd {
    const float *d, *x, *rstd;
    int C;
    __device__ float operator()(size_t i) const { return d[i] * x[i] * rstd[i / C]; }
};

extern "C" void nl_cu_scalenorm_forward(float *out, float *rstd, const float *inp, const float *g, float scale,
                                        float eps, size_t N, int C) {
    scalenorm_fwd_k<<<row_grid(N), nl_cu_row_threads(C)>>>(out, rstd, inp, g, scale, eps, N, C);
    LAUNCHED();
}

extern "C" void nl_cu_scalenorm_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                                         const float *rstd, float scale, size_t N, int C) {
    scalenorm_bwd_k<<<row_grid(N), nl_cu_row_threads(C)>>>(dinp, dout, inp, g, rstd, scale, N, C);
    LAUNCHED();
    scalar_sum_of(dg, N * (size_t)C, DotRstd{ dout, inp, rstd, C }, scale);
}

/* ---------------------------------------------------------------- DyT */

__global__ void dyt_fwd_k(float *out, const float *inp, const float *w, const float *b, const float *alpha, float scale,
                          size_t n, int C) {
    const float a = alpha[0];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % C);
        out[i] = scale * (w[c] * tanhf(a * inp[i]) + (b ? b[c] : 0.0f));
    }
}

__global__ void dyt_bwd_k(float *dinp, const float *dout, const float *inp, const float *w, const float *alpha,
                          float scale, size_t n, int C) {
    const float a = alpha[0];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float t = tanhf(a * inp[i]);
        dinp[i] += scale * dout[i] * w[i % C] * a * (1.0f - t * t);
    }
}

struct DytAlpha {
    const float *d, *x, *w, *alpha;
    int C;
    __device__ float operator()(size_t i) const {
        const float t = tanhf(alpha[0] * x[i]);
        return d[i] * w[i % C] * x[i] * (1.0f - t * t);
    }
};
struct DytW {
    const float *d, *x, *alpha;
    float scale;
    int C;
    __device__ float operator()(size_t n, int c) const { return scale * d[n * C + c] * tanhf(alpha[0] * x[n * C + c]); }
};

extern "C" void nl_cu_dyt_forward(float *out, const float *inp, const float *w, const float *b, const float *alpha,
                                  float scale, size_t N, int C) {
    dyt_fwd_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(out, inp, w, b, alpha, scale, N * (size_t)C, C);
    LAUNCHED();
}

extern "C" void nl_cu_dyt_backward(float *dinp, float *dw, float *db, float *dalpha, const float *dout,
                                   const float *inp, const float *w, const float *alpha, float scale, size_t N, int C) {
    dyt_bwd_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(dinp, dout, inp, w, alpha, scale, N * (size_t)C, C);
    LAUNCHED();
    scalar_sum_of(dalpha, N * (size_t)C, DytAlpha{ dout, inp, w, alpha, C }, scale);
    colsum_of(dw, N, C, DytW{ dout, inp, alpha, scale, C }, 1);
    if (db) colsum_of(db, N, C, ScaledIdent{ dout, scale, C }, 1);
}

/* ---------------------------------------------------------------- SeeDNorm */

__global__ void seednorm_fwd_k(float *out, float *bxv, float *rstd, const float *inp, const float *w,
                               const float *alpha, const float *beta, float scale, float eps, size_t N, int C) {
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C;
        float ss = 0.0f, bx = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x) ss += x[i] * x[i], bx += beta[i] * x[i];
        ss = block_sum<float>(ss);
        bx = block_sum<float>(bx);
        const float r = 1.0f / sqrtf(ss / (float)C + eps), s = tanhf(bx);
        for (int i = threadIdx.x; i < C; i += blockDim.x) out[n * C + i] = scale * (s * alpha[i] + w[i]) * x[i] * r;
        if (threadIdx.x == 0) bxv[n] = bx, rstd[n] = r;
    }
}

__device__ float sech2(float x) {
    const float ch = coshf(x);
    return 1.0f / (ch * ch);
}

/* also writes dbx[n] = ds sech^2(bx), the per-row factor of dbeta */
__global__ void seednorm_bwd_k(float *dinp, float *dbxv, const float *dout, const float *inp, const float *w,
                               const float *alpha, const float *beta, const float *bxv, const float *rstd, float scale,
                               size_t N, int C) {
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C, *d = dout + n * C;
        const float r = rstd[n], s = tanhf(bxv[n]);
        double a = 0.0, b = 0.0;
        for (int i = threadIdx.x; i < C; i += blockDim.x) {
            const float xh = x[i] * r;
            a += scale * d[i] * (s * alpha[i] + w[i]) * xh;
            b += scale * d[i] * alpha[i] * xh;
        }
        a = block_sum<double>(a);
        b = block_sum<double>(b);
        const float m = (float)(a / C), dbx = (float)b * sech2(bxv[n]);
        for (int i = threadIdx.x; i < C; i += blockDim.x) {
            const float xh = x[i] * r;
            dinp[n * C + i] += r * (scale * d[i] * (s * alpha[i] + w[i]) - xh * m) + dbx * beta[i];
        }
        if (threadIdx.x == 0) dbxv[n] = dbx;
    }
}

struct SeedW { /* scale d x r, times tanh(bx) when s */
    const float *d, *x, *rstd, *bx;
    float scale;
    int C, s;
    __device__ float operator()(size_t n, int c) const {
        const float v = scale * d[n * C + c] * x[n * C + c] * rstd[n];
        return s ? v * tanhf(bx[n]) : v;
    }
};
struct RowTimes { /* f[n] * x[n, c] */
    const float *f, *x;
    int C;
    __device__ float operator()(size_t n, int c) const { return f[n] * x[n * C + c]; }
};

extern "C" void nl_cu_seednorm_forward(float *out, float *bx, float *rstd, const float *inp, const float *w,
                                       const float *alpha, const float *beta, float scale, float eps, size_t N, int C) {
    seednorm_fwd_k<<<row_grid(N), nl_cu_row_threads(C)>>>(out, bx, rstd, inp, w, alpha, beta, scale, eps, N, C);
    LAUNCHED();
}

extern "C" void nl_cu_seednorm_backward(float *dinp, float *dw, float *dalpha, float *dbeta, const float *dout,
                                        const float *inp, const float *w, const float *alpha, const float *beta,
                                        const float *bx, const float *rstd, float scale, size_t N, int C) {
    float *dbx = NULL;
    if (cudaMalloc(&dbx, (N ? N : 1) * sizeof(float)) != cudaSuccess) nl_cu_fail("seednorm backward", "cudaMalloc");
    seednorm_bwd_k<<<row_grid(N), nl_cu_row_threads(C)>>>(dinp, dbx, dout, inp, w, alpha, beta, bx, rstd, scale, N, C);
    LAUNCHED();
    colsum_of(dw, N, C, SeedW{ dout, inp, rstd, bx, scale, C, 0 }, 1);
    colsum_of(dalpha, N, C, SeedW{ dout, inp, rstd, bx, scale, C, 1 }, 1);
    colsum_of(dbeta, N, C, RowTimes{ dbx, inp, C }, 1);
    cudaFree(dbx);
}

/* ---------------------------------------------------------------- CRMSNorm */

__global__ void crms_fwd_k(float *out, float *s1v, float *rstd, const float *inp, const float *w, float scale,
                           float eps, size_t N, int C) {
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C;
        float s1 = 0.0f, s2 = 0.0f;
        for (int i = threadIdx.x; i < C - 1; i += blockDim.x) s1 += x[i], s2 += x[i] * x[i];
        s1 = block_sum<float>(s1);
        s2 = block_sum<float>(s2);
        const float r = 1.0f / sqrtf((s2 + s1 * s1) / (float)C + eps);
        for (int i = threadIdx.x; i < C; i += blockDim.x) out[n * C + i] = scale * w[i] * x[i] * r;
        if (threadIdx.x == 0) s1v[n] = s1, rstd[n] = r;
    }
}

__global__ void crms_bwd_k(float *dinp, const float *dout, const float *inp, const float *w, const float *s1v,
                           const float *rstd, float scale, size_t N, int C) {
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = inp + n * C, *d = dout + n * C;
        const float r = rstd[n], s1r = s1v[n] * r;
        float dot = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x) dot += scale * w[i] * d[i] * x[i] * r;
        const float k = block_sum<float>(dot) / (float)C;
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            dinp[n * C + i] += i < C - 1 ? r * (scale * w[i] * d[i] - (x[i] * r + s1r) * k) : r * scale * w[i] * d[i];
    }
}

extern "C" void nl_cu_crmsnorm_forward(float *out, float *s1, float *rstd, const float *inp, const float *w,
                                       float scale, float eps, size_t N, int C) {
    crms_fwd_k<<<row_grid(N), nl_cu_row_threads(C)>>>(out, s1, rstd, inp, w, scale, eps, N, C);
    LAUNCHED();
}

extern "C" void nl_cu_crmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                        const float *s1, const float *rstd, float scale, size_t N, int C) {
    crms_bwd_k<<<row_grid(N), nl_cu_row_threads(C)>>>(dinp, dout, inp, w, s1, rstd, scale, N, C);
    LAUNCHED();
    colsum_of(dw, N, C, SeedW{ dout, inp, rstd, NULL, scale, C, 0 }, 1);
}

/* ---------------------------------------------------------------- elementwise ops */

#define GRID_STRIDE(i, n)                                                                                              \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void headscale_k(float *out, const float *inp, const float *g, size_t n, int C, int hs) {
    GRID_STRIDE(i, n) out[i] = g[(int)(i % C) / hs] * inp[i];
}
__global__ void head_sums_k(float *dg, const float *colsums, int NH, int hs) {
    const int h = blockIdx.x * blockDim.x + threadIdx.x;
    if (h >= NH) return;
    float s = 0.0f;
    for (int i = h * hs; i < (h + 1) * hs; i++) s += colsums[i];
    dg[h] += s;
}
__global__ void chanres_k(float *out, const float *x, const float *y, const float *lam, size_t n, int C) {
    GRID_STRIDE(i, n) out[i] = lam[i % C] * x[i] + (y ? y[i] : 0.0f);
}
__global__ void gain_k(float *out, const float *inp, const float *g, size_t n) {
    const float k = g[0];
    GRID_STRIDE(i, n) out[i] = k * inp[i];
}
/* GPAS: out = (1 - SiLU(g)) inp; the gate's gradient terms -SiLU'(g) dout inp (the input's gradient is dout) */
__device__ float silu_d(float g, float *deriv) {
    const float sig = 1.0f / (1.0f + expf(-g));
    *deriv = sig * (1.0f + g * (1.0f - sig));
    return g * sig;
}
__global__ void gpas_k(float *out, const float *inp, const float *g, size_t n) {
    float d;
    const float k = 1.0f - silu_d(g[0], &d);
    GRID_STRIDE(i, n) out[i] = k * inp[i];
}
struct GpasGate {
    const float *dout, *inp, *g;
    __device__ float operator()(size_t i) const {
        float d;
        silu_d(g[0], &d);
        return -d * dout[i] * inp[i];
    }
};
__global__ void bias_k(float *out, const float *b, size_t n, int OC) { GRID_STRIDE(i, n) out[i] += b[i % OC]; }
__global__ void residual_k(float *out, const float *x, const float *y, float alpha, size_t n) {
    GRID_STRIDE(i, n) out[i] = alpha * x[i] + y[i];
}
__global__ void scale_shift_k(float *out, const float *x, float a, float b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a * x[i] + b;
}

#define GELU_K 0.7978845608028654f

__global__ void gelu_fwd_k(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        const float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}
__global__ void gelu_bwd_k(float *dinp, const float *inp, const float *dout, size_t n) {
    GRID_STRIDE(i, n) {
        const float x = inp[i], t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
        const float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
}
__global__ void swiglu_fwd_k(float *out, const float *inp, size_t n, int F) {
    GRID_STRIDE(i, n) {
        const size_t r = i / F, c = i % F;
        const float g = inp[r * 2 * F + c], u = inp[r * 2 * F + F + c];
        out[i] = g / (1.0f + expf(-g)) * u;
    }
}
__global__ void swiglu_bwd_k(float *dinp, const float *inp, const float *dout, size_t n, int F) {
    GRID_STRIDE(i, n) {
        const size_t r = i / F, c = i % F;
        const float g = inp[r * 2 * F + c], u = inp[r * 2 * F + F + c], dy = dout[i];
        const float sig = 1.0f / (1.0f + expf(-g));
        dinp[r * 2 * F + c] = dy * u * sig * (1.0f + g * (1.0f - sig));
        dinp[r * 2 * F + F + c] = dy * g * sig;
    }
}

extern "C" void nl_cu_headscale_forward(float *out, const float *inp, const float *g, size_t N, int C, int NH) {
    headscale_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(out, inp, g, N * (size_t)C, C, C / NH);
    LAUNCHED();
}
extern "C" void nl_cu_headscale_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                                         size_t N, int C, int NH) {
    float *cols = NULL; /* its own buffer: colsum_of uses the scratch */
    if (cudaMalloc(&cols, (size_t)C * sizeof(float)) != cudaSuccess) nl_cu_fail("headscale backward", "cudaMalloc");
    colsum_of(cols, N, C, Prod{ dout, inp, C }, 0);
    head_sums_k<<<(NH + 63) / 64, 64>>>(dg, cols, NH, C / NH);
    headscale_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(dinp, dout, g, N * (size_t)C, C, C / NH);
    LAUNCHED();
    cudaFree(cols);
}
extern "C" void nl_cu_chanres_forward(float *out, const float *x, const float *y, const float *lam, size_t N, int C) {
    chanres_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(out, x, y, lam, N * (size_t)C, C);
    LAUNCHED();
}
extern "C" void nl_cu_chanres_backward(float *dx, float *dlam, const float *dout, const float *x, const float *lam,
                                       size_t N, int C) {
    colsum_of(dlam, N, C, Prod{ dout, x, C }, 1); /* before dx: dx may alias dout */
    chanres_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(dx, dout, NULL, lam, N * (size_t)C, C);
    LAUNCHED();
}
extern "C" void nl_cu_gain_forward(float *out, const float *inp, const float *g, size_t n) {
    gain_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(out, inp, g, n);
    LAUNCHED();
}
extern "C" void nl_cu_gain_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                                    size_t n) {
    /* the reduction reads dout before dinp (which may alias it) is written: the stream orders them */
    scalar_sum_of(dg, n, Prod{ dout, inp, 0 }, 1.0f);
    gain_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(dinp, dout, g, n);
    LAUNCHED();
}
extern "C" void nl_cu_gpas_forward(float *out, const float *inp, const float *g, size_t n) {
    gpas_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(out, inp, g, n);
    LAUNCHED();
}
extern "C" void nl_cu_gpas_backward(float *dg, const float *dout, const float *inp, const float *g, size_t n) {
    scalar_sum_of(dg, n, GpasGate{ dout, inp, g }, 1.0f);
}
extern "C" void nl_cu_bias_add(float *out, const float *b, size_t N, int OC) {
    bias_k<<<nl_cu_blocks(N * OC), NL_CU_THREADS>>>(out, b, N * (size_t)OC, OC);
    LAUNCHED();
}
extern "C" void nl_cu_colsum(float *out, const float *x, size_t N, int cols, int ld) {
    colsum_of(out, N, cols, Ident{ x, ld }, 1);
}
extern "C" void nl_cu_residual_forward(float *out, const float *x, const float *y, float alpha, size_t n) {
    residual_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(out, x, y, alpha, n);
    LAUNCHED();
}
extern "C" void nl_cu_scale_shift(float *out, const float *x, float a, float b, size_t n) {
    scale_shift_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(out, x, a, b, n);
    LAUNCHED();
}
extern "C" void nl_cu_gelu_forward(float *out, const float *inp, size_t n) {
    gelu_fwd_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(out, inp, n);
    LAUNCHED();
}
extern "C" void nl_cu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    gelu_bwd_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(dinp, inp, dout, n);
    LAUNCHED();
}
extern "C" void nl_cu_swiglu_forward(float *out, const float *inp, size_t N, int F) {
    swiglu_fwd_k<<<nl_cu_blocks(N * F), NL_CU_THREADS>>>(out, inp, N * (size_t)F, F);
    LAUNCHED();
}
extern "C" void nl_cu_swiglu_backward(float *dinp, const float *inp, const float *dout, size_t N, int F) {
    swiglu_bwd_k<<<nl_cu_blocks(N * F), NL_CU_THREADS>>>(dinp, inp, dout, N * (size_t)F, F);
    LAUNCHED();
}

/* ---------------------------------------------------------------- attention: the softmax steps
 * (the per-head products are cuBLASLt calls in backend.c) */

/* rows of T: causal softmax over columns <= t (the row index mod T), zeros above the diagonal */
__global__ void attn_softmax_k(float *att, size_t rows, int T) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int t = (int)(r % T);
        float *p = att + r * T;
        float mx = -INFINITY;
        for (int j = threadIdx.x; j <= t; j += blockDim.x) mx = fmaxf(mx, p[j]);
        mx = block_max(mx);
        float s = 0.0f;
        for (int j = threadIdx.x; j <= t; j += blockDim.x) s += expf(p[j] - mx);
        const float inv = 1.0f / block_sum<float>(s);
        for (int j = threadIdx.x; j < T; j += blockDim.x) p[j] = j <= t ? expf(p[j] - mx) * inv : 0.0f;
    }
}

/* datt <- sc P (dP - rowsum(P dP)) on columns <= t, zeros above the diagonal */
__global__ void attn_dsoftmax_k(float *datt, const float *att, size_t rows, int T, float sc) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int t = (int)(r % T);
        const float *p = att + r * T;
        float *dp = datt + r * T;
        float dot = 0.0f;
        for (int j = threadIdx.x; j <= t; j += blockDim.x) dot += p[j] * dp[j];
        dot = block_sum<float>(dot);
        for (int j = threadIdx.x; j < T; j += blockDim.x) dp[j] = j <= t ? sc * p[j] * (dp[j] - dot) : 0.0f;
    }
}

extern "C" void nl_cu_attn_softmax(float *att, size_t rows, int T) {
    attn_softmax_k<<<row_grid(rows), nl_cu_row_threads(T)>>>(att, rows, T);
    LAUNCHED();
}

extern "C" void nl_cu_attn_dsoftmax(float *datt, const float *att, size_t rows, int T, float sc) {
    attn_dsoftmax_k<<<row_grid(rows), nl_cu_row_threads(T)>>>(datt, att, rows, T, sc);
    LAUNCHED();
}

/* ---------------------------------------------------------------- RoPE */

__global__ void rope_k(float *out, const float *inp, const float *cos_t, const float *sin_t, size_t rows, int T, int ld,
                       int nrot, int hs, float dir) {
    const int half = hs / 2, pairs = nrot / 2;
    GRID_STRIDE(idx, rows * pairs) {
        const size_t n = idx / pairs;
        const int p = (int)(idx % pairs), h0 = p / half * hs, i = p % half, t = (int)(n % T);
        const float c = cos_t[(size_t)t * half + i], s = dir * sin_t[(size_t)t * half + i];
        const float x0 = inp[n * ld + h0 + 2 * i], x1 = inp[n * ld + h0 + 2 * i + 1];
        out[n * ld + h0 + 2 * i] = x0 * c - x1 * s;
        out[n * ld + h0 + 2 * i + 1] = x0 * s + x1 * c;
    }
}
__global__ void copy_tail_k(float *out, const float *inp, size_t rows, int ld, int c0) {
    const int w = ld - c0;
    GRID_STRIDE(idx, rows * w) {
        const size_t n = idx / w;
        out[n * ld + c0 + idx % w] = inp[n * ld + c0 + idx % w];
    }
}

extern "C" void nl_cu_rope_forward(float *out, const float *inp, const float *cos_t, const float *sin_t, int B, int T,
                                   int ld, int nrot, int hs) {
    const size_t rows = (size_t)B * T;
    rope_k<<<nl_cu_blocks(rows * (nrot / 2)), NL_CU_THREADS>>>(out, inp, cos_t, sin_t, rows, T, ld, nrot, hs, 1.0f);
    if (out != inp && ld > nrot)
        copy_tail_k<<<nl_cu_blocks(rows * (ld - nrot)), NL_CU_THREADS>>>(out, inp, rows, ld, nrot);
    LAUNCHED();
}
extern "C" void nl_cu_rope_backward(float *d, const float *cos_t, const float *sin_t, int B, int T, int ld, int nrot,
                                    int hs) {
    const size_t rows = (size_t)B * T;
    rope_k<<<nl_cu_blocks(rows * (nrot / 2)), NL_CU_THREADS>>>(d, d, cos_t, sin_t, rows, T, ld, nrot, hs, -1.0f);
    LAUNCHED();
}

/* ---------------------------------------------------------------- embedding */

__global__ void encoder_fwd_k(float *out, const int *tokens, const float *wte, const float *wpe, size_t n, int T, int C) {
    GRID_STRIDE(i, n) {
        const size_t r = i / C;
        const int c = (int)(i % C);
        out[i] = wte[(size_t)tokens[r] * C + c] + (wpe ? wpe[(r % T) * C + c] : 0.0f);
    }
}
/* one thread per column, rows in order: a deterministic scatter-add */
__global__ void encoder_bwd_wte_k(float *dwte, const float *dout, const int *tokens, size_t rows, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (size_t r = 0; r < rows; r++) dwte[(size_t)tokens[r] * C + c] += dout[r * C + c];
}
__global__ void encoder_bwd_wpe_k(float *dwpe, const float *dout, int B, int T, int C) {
    GRID_STRIDE(i, (size_t)T * C) {
        const size_t t = i / C;
        const int c = (int)(i % C);
        for (int b = 0; b < B; b++) dwpe[i] += dout[((size_t)b * T + t) * C + c];
    }
}

extern "C" void nl_cu_encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B, int T,
                                      int C) {
    const size_t n = (size_t)B * T * C;
    encoder_fwd_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(out, tokens, wte, wpe, n, T, C);
    LAUNCHED();
}
extern "C" void nl_cu_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B, int T,
                                       int C) {
    encoder_bwd_wte_k<<<(C + 63) / 64, 64>>>(dwte, dout, tokens, (size_t)B * T, C);
    if (dwpe) encoder_bwd_wpe_k<<<nl_cu_blocks((size_t)T * C), NL_CU_THREADS>>>(dwpe, dout, B, T, C);
    LAUNCHED();
}

/* ---------------------------------------------------------------- cross-entropy */

__global__ void xent_k(float *losses, float *logits, const int *targets, size_t N, int V, int ld, float dscale) {
    for (size_t n = blockIdx.x; n < N; n += gridDim.x) {
        float *z = logits + n * (size_t)ld;
        const int tg = targets[n];
        const float zt = z[tg];
        float mx = -INFINITY;
        for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, z[i]);
        mx = block_max(mx); /* synchronises: every thread has read zt */
        double s = 0.0;
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            z[i] = expf(z[i] - mx);
            s += z[i];
        }
        s = block_sum<double>(s);
        if (threadIdx.x == 0) losses[n] = (float)((double)mx + log(s) - (double)zt);
        if (dscale == 0.0f) continue;
        const float k = dscale / (float)s;
        for (int i = threadIdx.x; i < V; i += blockDim.x) z[i] = i == tg ? z[i] * k - dscale : z[i] * k;
    }
}

extern "C" void nl_cu_xent(float *losses, float *logits, const int *targets, size_t N, int V, int ld, float dscale) {
    xent_k<<<row_grid(N), 1024>>>(losses, logits, targets, N, V, ld, dscale);
    LAUNCHED();
}

/* ---------------------------------------------------------------- AdamW and reductions */

__global__ void adamw_k(float *p, float *m, float *v, const float *g, size_t n, nl_adamw_hp hp) {
    GRID_STRIDE(j, n) {
        const float gj = g[j] * hp.gscale;
        const float mj = hp.beta1 * m[j] + (1.0f - hp.beta1) * gj, vj = hp.beta2 * v[j] + (1.0f - hp.beta2) * gj * gj;
        m[j] = mj;
        v[j] = vj;
        p[j] -= hp.lr * (hp.wd * p[j] + mj * hp.ic1 / (sqrtf(vj * hp.ic2) + hp.eps));
    }
}

extern "C" void nl_cu_adamw(float *p, float *m, float *v, const float *g, size_t n, const nl_adamw_hp *hp) {
    adamw_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(p, m, v, g, n, *hp);
    LAUNCHED();
}

extern "C" void nl_cu_chunk_sums(double *part, const float *x, size_t n, size_t chunk, int sq) {
    const size_t k = (n + chunk - 1) / chunk;
    if (!k) return;
    double *dpart = (double *)nl_cu_scratch(k * sizeof(double));
    term_partial<<<(unsigned)k, NL_CU_THREADS>>>(dpart, n, chunk, Value{ x, sq });
    LAUNCHED();
    const cudaError_t e = cudaMemcpy(part, dpart, k * sizeof(double), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) nl_cu_fail("chunk sums: cudaMemcpy", cudaGetErrorString(e));
}

__global__ void nonfinite_k(unsigned long long *first, const float *x, size_t n) {
    GRID_STRIDE(i, n) if (!isfinite(x[i])) atomicMin(first, (unsigned long long)i);
}

extern "C" size_t nl_cu_first_nonfinite(const float *x, size_t n) {
    unsigned long long h = n, *d = (unsigned long long *)nl_cu_scratch(sizeof h);
    cudaMemcpy(d, &h, sizeof h, cudaMemcpyHostToDevice);
    if (n) nonfinite_k<<<nl_cu_blocks(n), NL_CU_THREADS>>>(d, x, n);
    LAUNCHED();
    const cudaError_t e = cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) nl_cu_fail("first_nonfinite: cudaMemcpy", cudaGetErrorString(e));
    return (size_t)h;
}

/* ---------------------------------------------------------------- nGPT (src/cpu/ops_sphere.c) */

#define L2_TINY 1e-12f

/* rows of G channels: row r is group r % ng of token r / ng; s index (r % ng) * G + i */
__global__ void l2norm_fwd_k(float *out, float *rstd, const float *inp, const float *s, float f, size_t R, int G, int ng) {
    for (size_t r = blockIdx.x; r < R; r += gridDim.x) {
        const float *x = inp + r * G;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < G; i += blockDim.x) ss += x[i] * x[i];
        const float k = 1.0f / fmaxf(sqrtf(block_sum<float>(ss)), L2_TINY);
        const int s0 = (int)(r % ng) * G;
        for (int i = threadIdx.x; i < G; i += blockDim.x) out[r * G + i] = f * (s ? s[s0 + i] : 1.0f) * x[i] * k;
        if (threadIdx.x == 0) rstd[r] = k;
    }
}
__global__ void l2norm_bwd_k(float *dinp, const float *dout, const float *inp, const float *s, const float *rstd,
                             float f, size_t R, int G, int ng) {
    for (size_t r = blockIdx.x; r < R; r += gridDim.x) {
        const float *x = inp + r * G, *d = dout + r * G;
        const float k = rstd[r];
        const int s0 = (int)(r % ng) * G;
        float dot = 0.0f;
        for (int i = threadIdx.x; i < G; i += blockDim.x) dot += f * (s ? s[s0 + i] : 1.0f) * d[i] * x[i] * k;
        dot = block_sum<float>(dot);
        if (k >= 1.0f / L2_TINY) dot = 0.0f;
        for (int i = threadIdx.x; i < G; i += blockDim.x)
            dinp[r * G + i] += k * (f * (s ? s[s0 + i] : 1.0f) * d[i] - x[i] * k * dot);
    }
}
struct L2Ds { /* f dout x / |x| */
    const float *d, *x, *rstd;
    float f;
    int C, G;
    __device__ float operator()(size_t n, int c) const {
        return f * d[n * C + c] * x[n * C + c] * rstd[(n * C + c) / G];
    }
};
extern "C" void nl_cu_l2norm_forward(float *out, float *rstd, const float *inp, const float *s, float f, size_t N,
                                     int C, int G) {
    const size_t R = N * (size_t)(C / G);
    l2norm_fwd_k<<<row_grid(R), nl_cu_row_threads(G)>>>(out, rstd, inp, s, f, R, G, C / G);
    LAUNCHED();
}
extern "C" void nl_cu_l2norm_backward(float *dinp, float *ds, const float *dout, const float *inp, const float *s,
                                      const float *rstd, float f, size_t N, int C, int G) {
    const size_t R = N * (size_t)(C / G);
    if (ds) colsum_of(ds, N, C, L2Ds{ dout, inp, rstd, f, C, G }, 1);
    l2norm_bwd_k<<<row_grid(R), nl_cu_row_threads(G)>>>(dinp, dout, inp, s, rstd, f, R, G, C / G);
    LAUNCHED();
}

__device__ float absf_scaled(float f, float a) { return fabsf(f * a); }
__global__ void lerp_fwd_k(float *out, const float *x, const float *y, const float *alpha, float f, size_t n, int C) {
    GRID_STRIDE(i, n) out[i] = x[i] + absf_scaled(f, alpha[i % C]) * (y[i] - x[i]);
}
__global__ void lerp_bwd_k(float *dx, float *dy, const float *dout, const float *alpha, float f, size_t n, int C) {
    GRID_STRIDE(i, n) {
        const float a = absf_scaled(f, alpha[i % C]), g = dout[i];
        dx[i] = (1.0f - a) * g;
        dy[i] = a * g;
    }
}
struct LerpDa { /* f sign(f alpha) dout (y - x) */
    const float *d, *x, *y, *alpha;
    float f;
    int C;
    __device__ float operator()(size_t n, int c) const {
        const float fa = f * alpha[c], sg = (float)((fa > 0.0f) - (fa < 0.0f));
        return f * sg * d[n * C + c] * (y[n * C + c] - x[n * C + c]);
    }
};
extern "C" void nl_cu_lerp_forward(float *out, const float *x, const float *y, const float *alpha, float f, size_t N,
                                   int C) {
    lerp_fwd_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(out, x, y, alpha, f, N * (size_t)C, C);
    LAUNCHED();
}
extern "C" void nl_cu_lerp_backward(float *dx, float *dy, float *dalpha, const float *dout, const float *x,
                                    const float *y, const float *alpha, float f, size_t N, int C) {
    colsum_of(dalpha, N, C, LerpDa{ dout, x, y, alpha, f, C }, 1);
    lerp_bwd_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(dx, dy, dout, alpha, f, N * (size_t)C, C);
    LAUNCHED();
}

__global__ void colscale_k(float *out, const float *inp, const float *s, float f, size_t n, int C, int ld) {
    GRID_STRIDE(i, n) {
        const size_t r = i / C, c = i % C;
        out[r * ld + c] = f * s[c] * inp[r * ld + c];
    }
}
struct ScaledProdLd {
    const float *a, *b;
    float f;
    int ld;
    __device__ float operator()(size_t n, int c) const { return f * a[n * ld + c] * b[n * ld + c]; }
};
extern "C" void nl_cu_colscale_forward(float *out, const float *inp, const float *s, float f, size_t N, int C, int ld) {
    colscale_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(out, inp, s, f, N * (size_t)C, C, ld);
    LAUNCHED();
}
extern "C" void nl_cu_colscale_backward(float *dinp, float *ds, const float *dout, const float *inp, const float *s,
                                        float f, size_t N, int C, int ld) {
    colsum_of(ds, N, C, ScaledProdLd{ dout, inp, f, ld }, 1); /* before dinp, which may alias dout */
    colscale_k<<<nl_cu_blocks(N * C), NL_CU_THREADS>>>(dinp, dout, s, f, N * (size_t)C, C, ld);
    LAUNCHED();
}

__global__ void unit_rows_k(float *w, size_t rows, int cols) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        double ss = 0.0;
        for (int i = threadIdx.x; i < cols; i += blockDim.x) ss += (double)w[r * cols + i] * w[r * cols + i];
        ss = block_sum<double>(ss);
        if (ss > 0)
            for (int i = threadIdx.x; i < cols; i += blockDim.x) w[r * cols + i] = (float)(w[r * cols + i] / sqrt(ss));
    }
}
__global__ void unit_cols_k(float *w, size_t rows, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double ss = 0.0;
    for (size_t r = 0; r < rows; r++) ss += (double)w[r * cols + c] * w[r * cols + c];
    if (ss > 0)
        for (size_t r = 0; r < rows; r++) w[r * cols + c] = (float)(w[r * cols + c] / sqrt(ss));
}
extern "C" void nl_cu_unit_project(float *w, size_t rows, int cols, int by_col) {
    if (by_col) unit_cols_k<<<(cols + NL_CU_THREADS - 1) / NL_CU_THREADS, NL_CU_THREADS>>>(w, rows, cols);
    else unit_rows_k<<<row_grid(rows), nl_cu_row_threads(cols)>>>(w, rows, cols);
    LAUNCHED();
}
