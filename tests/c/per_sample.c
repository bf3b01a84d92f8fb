/* Inference of an object written by `netc build`, for tests/modes.rs: the whole batch in one
 * call of forward, then every sample alone (a batch of one).
 *
 * Compile with -DPREFIX=name -DUPPER=NAME -DHEADER='"name.h"' for a float model with one
 * data input `x` and one output `scores`. Reads argv[1]: int64 n, float x[n * X_ROW]. Writes
 * argv[2]: the n rows of scores of the batch, then the n rows computed one sample at a time.
 * Exits 1 with a message on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(PREFIX, name)
#define K(name) CAT(UPPER, name)

static void *alloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: per_sample INPUT OUTPUT\n");
        return 1;
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *out = fopen(argv[2], "wb");
    if (!in || !out) {
        fprintf(stderr, "cannot open files\n");
        return 1;
    }
    int64_t n;
    if (fread(&n, sizeof n, 1, in) != 1 || n < 1) {
        fprintf(stderr, "bad input\n");
        return 1;
    }
    float *x = alloc(sizeof(float) * (size_t)(n * K(_X_ROW)));
    if (fread(x, sizeof(float), (size_t)(n * K(_X_ROW)), in) != (size_t)(n * K(_X_ROW))) {
        fprintf(stderr, "input file too short\n");
        return 1;
    }
    float *params[K(_NUM_PARAMS)];
    for (int i = 0; i < K(_NUM_PARAMS); i++) params[i] = alloc(sizeof(float) * (size_t)FN(_param_sizes)[i]);
    FN(_init_params)(params);

    float *scores = alloc(sizeof(float) * (size_t)(n * K(_SCORES_ROW)));
    void *ws = alloc((size_t)FN(_forward_workspace_size)(n));
    FN(_forward)(n, x, (const float *const *)params, scores, ws);
    fwrite(scores, sizeof(float), (size_t)(n * K(_SCORES_ROW)), out);
    for (int64_t i = 0; i < n; i++) {
        FN(_forward)(1, x + i * K(_X_ROW), (const float *const *)params, scores, ws);
        fwrite(scores, sizeof(float), K(_SCORES_ROW), out);
    }
    if (fclose(out) != 0) {
        fprintf(stderr, "write failed\n");
        return 1;
    }
    return 0;
}
