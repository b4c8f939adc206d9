/* backend.c -- the CUDA backend (make USE_CUDA=1): device memory, matrix products through cuBLASLt with
 * a plan cache, the kernels of kernels.cu, and the reductions that return scalars to the host.
 * Everything runs on the default stream of device 0, so calls are ordered as the model makes them;
 * the copies to the host synchronise. Numbers are fp32 throughout: cuBLASLt computes in
 * CUBLAS_COMPUTE_32F (no TF32), so a product matches the CPU backend's to rounding. */
#include "backend.h"

#include "common.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"
#include "cuda/plan.h"

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void nl_cu_fail(const char *what, const char *err) {
    fprintf(stderr, "normlab: CUDA error in %s: %s\n", what, err);
    exit(1);
}

static void ck(cudaError_t e, const char *what) {
    if (e != cudaSuccess) nl_cu_fail(what, cudaGetErrorString(e));
}
static void ck_lt(cublasStatus_t s, const char *what) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        char msg[32];
        snprintf(msg, sizeof msg, "cuBLAS status %d", (int)s);
        nl_cu_fail(what, msg);
    }
}

/* ---------------------------------------------------------------- state */

enum { WORKSPACE_BYTES = 32 << 20 }; /* cuBLASLt workspace */

static struct {
    int ready;
    cublasLtHandle_t lt;
    void *workspace;
    void *scratch;
    size_t scratch_bytes;
    nl_plan_cache plans;
    char info[160];
} cu;

void *nl_cu_scratch(size_t bytes) {
    if (bytes > cu.scratch_bytes) {
        ck(cudaFree(cu.scratch), "scratch: cudaFree"); /* synchronises: no kernel still reads it */
        cu.scratch_bytes = bytes + bytes / 2;
        ck(cudaMalloc(&cu.scratch, cu.scratch_bytes), "scratch: cudaMalloc");
    }
    return cu.scratch;
}

static void cu_enter(void) { ck(cudaSetDevice(0), "cudaSetDevice"); }

/* ---------------------------------------------------------------- memory */

static void *cu_alloc(size_t bytes) {
    void *p = NULL;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        fprintf(stderr, "normlab: out of GPU memory allocating %zu bytes (%s)\n", bytes, cudaGetErrorString(e));
        exit(1);
    }
    ck(cudaMemset(p, 0, bytes ? bytes : 1), "cudaMemset");
    return p;
}
static void cu_free(void *p) {
    if (p) ck(cudaFree(p), "cudaFree");
}
static void cu_zero(void *p, size_t bytes) {
    if (bytes) ck(cudaMemset(p, 0, bytes), "cudaMemset");
}
static void cu_copy(void *dst, const void *src, size_t bytes) {
    if (dst != src && bytes) ck(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy (device)");
}
static void cu_to_host(void *host, const void *src, size_t bytes) {
    if (bytes) ck(cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy (to host)");
}
static void cu_from_host(void *dst, const void *host, size_t bytes) {
    if (bytes) ck(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (from host)");
}
static void cu_copy_cols(float *dst, int ldd, const float *src, int lds, size_t rows, int cols) {
    if (rows && cols)
        ck(cudaMemcpy2D(dst, (size_t)ldd * sizeof(float), src, (size_t)lds * sizeof(float),
                        (size_t)cols * sizeof(float), rows, cudaMemcpyDeviceToDevice),
           "cudaMemcpy2D");
}

/* ---------------------------------------------------------------- matrix products: cuBLASLt */

typedef struct lt_plan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

static cublasLtMatrixLayout_t layout(const nl_cm_layout *l) {
    cublasLtMatrixLayout_t m;
    ck_lt(cublasLtMatrixLayoutCreate(&m, CUDA_R_32F, (uint64_t)l->rows, (uint64_t)l->cols, l->ld), "matrix layout");
    return m;
}

static lt_plan *plan_make(const nl_gemm_key *key) {
    nl_cm_gemm g;
    nl_gemm_colmajor(key, &g);
    lt_plan *p = nl_xmalloc(sizeof *p);
    ck_lt(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul descriptor");
    const cublasOperation_t ta = g.transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    ck_lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "transa");
    ck_lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "transb");
    p->a = layout(&g.a);
    p->b = layout(&g.b);
    p->c = layout(&g.c);
    cublasLtMatmulPreference_t pref;
    ck_lt(cublasLtMatmulPreferenceCreate(&pref), "matmul preference");
    const size_t ws = WORKSPACE_BYTES;
    ck_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
          "workspace");
    /* the arrays are views into larger buffers (a tensor of the parameter block, columns of qkv): the
     * kernel must not assume the default 256-byte alignment */
    const uint32_t al = (uint32_t)key->align;
    static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                                        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                                        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                                        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES };
    for (int i = 0; i < 4; i++)
        ck_lt(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &al, sizeof al), "alignment");
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    ck_lt(cublasLtMatmulAlgoGetHeuristic(cu.lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &found), "heuristic");
    cublasLtMatmulPreferenceDestroy(pref);
    if (found < 1) nl_cu_fail("gemm", "cuBLASLt found no algorithm for this shape");
    p->algo = res.algo;
    return p;
}

static void plan_free(lt_plan *p) {
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->c);
    cublasLtMatmulDescDestroy(p->op);
    free(p);
}

static void cu_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc) {
    int align = nl_cu_align((size_t)A);
    if (nl_cu_align((size_t)B) < align) align = nl_cu_align((size_t)B);
    if (nl_cu_align((size_t)C) < align) align = nl_cu_align((size_t)C);
    const nl_gemm_key key = { tA != 0, tB != 0, M, N, K, lda, ldb, ldc, align };
    if (!nl_gemm_key_valid(&key)) nl_cu_fail("gemm", "malformed shape or leading dimension");
    if (M == 0 || N == 0) return;
    if (K == 0) nl_cu_fail("gemm", "inner dimension 0");
    nl_plan_entry *e = nl_plan_get(&cu.plans, &key);
    lt_plan *p = e && e->payload ? e->payload : plan_make(&key);
    if (e) e->payload = p;
    /* column-major C^T = op(B)^T op(A)^T: B is the first operand */
    ck_lt(cublasLtMatmul(cu.lt, p->op, &alpha, B, p->a, A, p->b, &beta, C, p->c, C, p->c, &p->algo, cu.workspace,
                         WORKSPACE_BYTES, 0),
          "cublasLtMatmul");
    if (!e) plan_free(p);
}

static const char *cu_gemm_info(void) { return cu.info; }

/* ---------------------------------------------------------------- ops built from others */

static void cu_linear_forward(float *out, const float *inp, const float *w, const float *b, size_t N, int IC, int OC) {
    cu_gemm(0, 1, (int)N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
    if (b) nl_cu_bias_add(out, b, N, OC);
}

static void cu_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                               size_t N, int IC, int OC) {
    cu_gemm(0, 0, (int)N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dinp, IC);
    cu_gemm(1, 0, OC, IC, (int)N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
    if (db) nl_cu_colsum(db, dout, N, OC, OC);
}

/* Causal attention with grouped-query heads (src/cpu/kernels.h), the CPU backend's algorithm: the
 * (B, NH, T, T) probabilities are kept; per (batch, head) the products are cuBLASLt calls, the softmax
 * steps one kernel each. A kv head's gradient rows are summed over its query heads in head order. */
static void cu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int KVH) {
    const int hs = C / NH, kvC = KVH * hs, ld = C + 2 * kvC, grp = NH / KVH;
    const size_t TT = (size_t)T * T;
    for (int bh = 0; bh < B * NH; bh++) { /* S = Q_h K_g^T / sqrt(hs) */
        const int b = bh / NH, h = bh % NH;
        const float *row = qkv + (size_t)b * T * ld;
        cu_gemm(0, 1, T, T, hs, 1.0f / sqrtf((float)hs), row + h * hs, ld, row + C + (h / grp) * hs, ld, 0.0f,
                att + bh * TT, T);
    }
    nl_cu_attn_softmax(att, (size_t)B * NH * T, T);
    for (int bh = 0; bh < B * NH; bh++) { /* Y_h = P V_g */
        const int b = bh / NH, h = bh % NH;
        const float *v = qkv + (size_t)b * T * ld + C + kvC + (h / grp) * hs;
        cu_gemm(0, 0, T, hs, T, 1.0f, att + bh * TT, T, v, ld, 0.0f, out + (size_t)b * T * C + h * hs, C);
    }
}

static void cu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att,
                                  int B, int T, int C, int NH, int KVH) {
    const int hs = C / NH, kvC = KVH * hs, ld = C + 2 * kvC, grp = NH / KVH;
    const size_t TT = (size_t)T * T;
    for (int bh = 0; bh < B * NH; bh++) { /* dP = dY_h V_g^T; dV_g = sum_h P^T dY_h */
        const int b = bh / NH, h = bh % NH, g = h / grp;
        const size_t vo = (size_t)b * T * ld + C + kvC + g * hs;
        const float *dy = dout + (size_t)b * T * C + h * hs;
        cu_gemm(0, 1, T, T, hs, 1.0f, dy, C, qkv + vo, ld, 0.0f, datt + bh * TT, T);
        cu_gemm(1, 0, T, hs, T, 1.0f, att + bh * TT, T, dy, C, h == g * grp ? 0.0f : 1.0f, dqkv + vo, ld);
    }
    nl_cu_attn_dsoftmax(datt, att, (size_t)B * NH * T, T, 1.0f / sqrtf((float)hs));
    for (int bh = 0; bh < B * NH; bh++) { /* dQ_h = dS K_g; dK_g = sum_h dS^T Q_h */
        const int b = bh / NH, h = bh % NH, g = h / grp;
        const size_t r0 = (size_t)b * T * ld, ko = r0 + C + g * hs, qo = r0 + h * hs;
        cu_gemm(0, 0, T, hs, T, 1.0f, datt + bh * TT, T, qkv + ko, ld, 0.0f, dqkv + qo, ld);
        cu_gemm(1, 0, T, hs, T, 1.0f, datt + bh * TT, T, qkv + qo, ld, h == g * grp ? 0.0f : 1.0f, dqkv + ko, ld);
    }
}

/* the table is computed on the host in double, as the CPU backend does, and copied */
static void cu_rope_table(float *cos_t, float *sin_t, int T, int hs, double theta) {
    const size_t n = (size_t)T * (hs / 2);
    float *h = nl_xmalloc(2 * (n ? n : 1) * sizeof(float));
    nl_rope_table(h, h + n, T, hs, theta);
    cu_from_host(cos_t, h, n * sizeof(float));
    cu_from_host(sin_t, h + n, n * sizeof(float));
    free(h);
}

/* ---------------------------------------------------------------- reductions to the host */

static double chunked(const float *x, size_t n, int sq) {
    const size_t k = (n + NL_SUMSQ_CHUNK - 1) / NL_SUMSQ_CHUNK;
    if (!k) return 0.0;
    double *part = nl_xmalloc(k * sizeof(double));
    nl_cu_chunk_sums(part, x, n, NL_SUMSQ_CHUNK, sq);
    double s = 0.0;
    for (size_t i = 0; i < k; i++) s += part[i];
    free(part);
    return s;
}
static double cu_sum(const float *x, size_t n) { return chunked(x, n, 0); }
static double cu_sumsq(const float *x, size_t n) { return chunked(x, n, 1); }

/* The median needs a selection over all N*C values: the tensor is copied to the host and the CPU
 * backend's statistics run there (a diagnostics pass, not the training step). */
static void cu_stream_stats(const float *x, size_t N, int C, float *scratch, nl_stream_stat *out) {
    (void)scratch;
    const size_t n = N * (size_t)C;
    float *h = nl_xmalloc(2 * (n ? n : 1) * sizeof(float));
    cu_to_host(h, x, n * sizeof(float));
    nl_stream_stats(h, N, C, h + n, out);
    free(h);
}

/* ---------------------------------------------------------------- the table */

static const nl_backend cuda = {
    .name = "cuda",
    .enter = cu_enter,
    .alloc = cu_alloc,
    .free = cu_free,
    .zero = cu_zero,
    .copy = cu_copy,
    .to_host = cu_to_host,
    .from_host = cu_from_host,
    .copy_cols = cu_copy_cols,
    .gemm = cu_gemm,
    .gemm_info = cu_gemm_info,
    .norm_forward = nl_cu_norm_forward,
    .norm_backward = nl_cu_norm_backward,
    .scalenorm_forward = nl_cu_scalenorm_forward,
    .scalenorm_backward = nl_cu_scalenorm_backward,
    .dyt_forward = nl_cu_dyt_forward,
    .dyt_backward = nl_cu_dyt_backward,
    .seednorm_forward = nl_cu_seednorm_forward,
    .seednorm_backward = nl_cu_seednorm_backward,
    .crmsnorm_forward = nl_cu_crmsnorm_forward,
    .crmsnorm_backward = nl_cu_crmsnorm_backward,
    .headscale_forward = nl_cu_headscale_forward,
    .headscale_backward = nl_cu_headscale_backward,
    .chanres_forward = nl_cu_chanres_forward,
    .chanres_backward = nl_cu_chanres_backward,
    .gain_forward = nl_cu_gain_forward,
    .gain_backward = nl_cu_gain_backward,
    .l2norm_forward = nl_cu_l2norm_forward,
    .l2norm_backward = nl_cu_l2norm_backward,
    .lerp_forward = nl_cu_lerp_forward,
    .lerp_backward = nl_cu_lerp_backward,
    .colscale_forward = nl_cu_colscale_forward,
    .colscale_backward = nl_cu_colscale_backward,
    .unit_project = nl_cu_unit_project,
    .gpas_forward = nl_cu_gpas_forward,
    .gpas_backward = nl_cu_gpas_backward,
    .linear_forward = cu_linear_forward,
    .linear_backward = cu_linear_backward,
    .attention_forward = cu_attention_forward,
    .attention_backward = cu_attention_backward,
    .rope_table = cu_rope_table,
    .rope_forward = nl_cu_rope_forward,
    .rope_backward = nl_cu_rope_backward,
    .gelu_forward = nl_cu_gelu_forward,
    .gelu_backward = nl_cu_gelu_backward,
    .swiglu_forward = nl_cu_swiglu_forward,
    .swiglu_backward = nl_cu_swiglu_backward,
    .encoder_forward = nl_cu_encoder_forward,
    .encoder_backward = nl_cu_encoder_backward,
    .residual_forward = nl_cu_residual_forward,
    .scale_shift = nl_cu_scale_shift,
    .xent = nl_cu_xent,
    .adamw = nl_cu_adamw,
    .sum = cu_sum,
    .sumsq = cu_sumsq,
    .first_nonfinite = nl_cu_first_nonfinite,
    .stream_stats = cu_stream_stats,
};

nl_status nl_backend_cuda(const nl_backend **out) {
    *out = NULL;
    if (!cu.ready) {
        int n = 0;
        const cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess || n < 1)
            return NL_FAIL(NL_ERR_IO, "--device cuda: no usable CUDA GPU (%s)",
                           e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        ck(cudaSetDevice(0), "cudaSetDevice");
        ck_lt(cublasLtCreate(&cu.lt), "cublasLtCreate");
        ck(cudaMalloc(&cu.workspace, WORKSPACE_BYTES), "workspace: cudaMalloc");
        struct cudaDeviceProp prop;
        ck(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
        snprintf(cu.info, sizeof cu.info, "cuBLASLt %zu fp32 (%.100s, sm_%d%d)", cublasLtGetVersion(), prop.name,
                 prop.major, prop.minor);
        cu.ready = 1;
    }
    *out = &cuda;
    return NL_OK;
}
