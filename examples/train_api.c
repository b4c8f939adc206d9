/* train_api.c -- training a few steps through normlab's public API (include/normlab.h only).
 *
 *   cc train_api.c $(pkg-config --cflags --libs normlab) -o train_api && ./train_api [model.safetensors]
 *
 * A tiny Pre-LN model learns a repeating sentence (byte tokens); the program prints the loss of each
 * step, evaluates, optionally exports the model, and exits 1 unless the loss fell. */
#include <normlab.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(nl_status st) {
    if (st != NL_OK) fprintf(stderr, "train_api: %s\n", nl_last_error());
    return st != NL_OK;
}

int main(int argc, char **argv) {
    static const char *const opts[][2] = {
        { "norm", "pre" },   { "layers", "2" },  { "dim", "32" },    { "heads", "2" },
        { "seq_len", "16" }, { "batch", "4" },   { "lr", "3e-3" },   { "warmup", "2" },
        { "steps", "20" },   { "vocab", "256" }, { "threads", "1" },
    };
    nl_config c;
    nl_config_defaults(&c);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (check(nl_config_set(&c, opts[i][0], opts[i][1]))) return 1;
    nl_trainer *t;
    if (check(nl_trainer_create(&t, &c))) return 1;
    const nl_config *r = nl_trainer_config(t);
    const char *text = "the cat sat on the mat. ";
    const size_t len = strlen(text), W = (size_t)r->seq_len + 1;
    int *windows = malloc((size_t)r->batch * W * sizeof(int));
    double first = 0.0, loss = 0.0;
    for (int step = 0; step < r->steps; step++) {
        for (int b = 0; b < r->batch; b++) /* window b of this step starts at a shifting offset */
            for (size_t k = 0; k < W; k++)
                windows[b * W + k] = (unsigned char)text[(k + (size_t)(step * 7 + b * 3)) % len];
        if (check(nl_trainer_step(t, windows, &loss))) return 1;
        if (step == 0) first = loss;
        printf("step %2d loss %.4f\n", step + 1, loss);
    }
    double eval;
    if (check(nl_trainer_eval(t, windows, r->batch, &eval))) return 1;
    printf("eval loss %.4f (first step %.4f)\n", eval, first);
    if (argc > 1 && check(nl_trainer_export(t, argv[1]))) return 1;
    free(windows);
    nl_trainer_free(t);
    return eval < first - 1.0 ? 0 : 1;
}
