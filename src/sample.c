/* sample.c -- see sample.h. */
#include "sample.h"

#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the k-th largest of z[0..V) (1 <= k <= V), by a partial selection on a copy */
static float kth_largest(const float *z, int V, int k, float *tmp) {
    memcpy(tmp, z, (size_t)V * sizeof *tmp);
    int lo = 0, hi = V - 1;
    const int want = k - 1; /* index in descending order */
    while (lo < hi) {
        const float pivot = tmp[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (tmp[i] > pivot) i++;
            while (tmp[j] < pivot) j--;
            if (i <= j) {
                float t = tmp[i];
                tmp[i++] = tmp[j];
                tmp[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return tmp[want];
}

void nl_generate(nl_model *m, const int *prompt, int n, int ntok, double temperature, int top_k, uint64_t seed,
                 void (*emit)(int, void *), void *ctx_emit) {
    const nl_config *c = &m->cfg;
    const int T = c->seq_len, V = c->vocab;
    NL_ASSERT(n >= 1);
    int *ctx = nl_xmalloc((size_t)T * sizeof(int)), len = 0;
    float *p = nl_xmalloc((size_t)V * sizeof(float)), *tmp = nl_xmalloc((size_t)V * sizeof(float));
    float *z = nl_xmalloc((size_t)V * sizeof(float)); /* host copy of the last position's logits */
    for (int i = n > T ? n - T : 0; i < n; i++) ctx[len++] = prompt[i];
    nl_model_alloc_acts(m, 1, T);
    nl_rng rng;
    nl_rng_seed(&rng, seed);
    for (int i = 0; i < ntok; i++) {
        nl_model_forward(m, ctx, NULL, 1, len, 0.0f);
        m->be->to_host(z, m->logits + (size_t)(len - 1) * c->vocab_padded, (size_t)V * sizeof(float)); /* not the padding */
        int next = 0;
        if (temperature <= 0) {
            for (int v = 1; v < V; v++)
                if (z[v] > z[next]) next = v;
        } else {
            const float thr = top_k > 0 && top_k < V ? kth_largest(z, V, top_k, tmp) : -INFINITY;
            float mx = -INFINITY;
            for (int v = 0; v < V; v++)
                if (z[v] > mx) mx = z[v];
            double sum = 0.0;
            for (int v = 0; v < V; v++) {
                p[v] = z[v] >= thr ? (float)exp((z[v] - mx) / temperature) : 0.0f;
                sum += p[v];
            }
            double u = nl_rng_uniform(&rng) * sum, acc = 0.0;
            next = V - 1;
            for (int v = 0; v < V; v++) {
                acc += p[v];
                if (u < acc) {
                    next = v;
                    break;
                }
            }
        }
        emit(next, ctx_emit);
        if (len == T) memmove(ctx, ctx + 1, (size_t)(T - 1) * sizeof(int)), len--;
        ctx[len++] = next;
    }
    free(ctx);
    free(p);
    free(tmp);
    free(z);
}
