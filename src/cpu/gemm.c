/* gemm.c -- nl_gemm over OpenBLAS's cblas_sgemm (OpenMP build: BLAS threads are the OpenMP pool, and a
 * call made inside a parallel region runs on the calling thread). The only file that calls BLAS. */
#include "gemm.h"

#include <cblas.h>
#include <stdio.h>

void nl_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

const char *nl_gemm_info(void) {
    static char info[128];
    if (!info[0]) {
        /* the configuration string starts "OpenBLAS 0.3.21 ..."; the core name is the kernel set chosen at load */
        char lib[32] = "OpenBLAS", ver[32] = "?";
        sscanf(openblas_get_config(), "%31s %31s", lib, ver);
        snprintf(info, sizeof info, "%s %s (%s)", lib, ver, openblas_get_corename());
    }
    return info;
}
