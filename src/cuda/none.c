/* none.c -- nl_backend_cuda in a build without CUDA (the default): --device cuda is refused. */
#include "backend.h"

#include "common.h"

nl_status nl_backend_cuda(const nl_backend **out) {
    *out = NULL;
    return NL_FAIL(NL_ERR_ARG, "--device cuda: this normlab was built without CUDA (build it with make USE_CUDA=1)");
}
