/* Drives an object written by `netc build` through its whole C API, for tests/build.rs.
 *
 * Compile with -DPREFIX=name -DUPPER=NAME -DHEADER='"name.h"' -DT=float for a model with one
 * data input `x` and a train block; add -DSEED=s for a model that draws random numbers
 * (dropout): backward then draws those of step 0 and the train steps those of steps 0, 1. Reads argv[1]: int64 batch, T lr, x[batch * X_ROW],
 * labels[batch]. Writes argv[2] (raw T values, in order): the initial parameters, the
 * forward outputs' first output, the backward loss and gradients, then two train steps'
 * losses and the parameters after them. Exits 1 with a message on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void put(FILE *out, const T *values, int64_t n) {
    if (fwrite(values, sizeof(T), (size_t)n, out) != (size_t)n) {
        fprintf(stderr, "write failed\n");
        exit(1);
    }
}

static void get(FILE *in, void *dst, size_t bytes) {
    if (fread(dst, 1, bytes, in) != bytes) {
        fprintf(stderr, "input file too short\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: harness INPUT OUTPUT\n");
        return 1;
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *out = fopen(argv[2], "wb");
    if (!in || !out) {
        fprintf(stderr, "cannot open files\n");
        return 1;
    }
    int64_t batch;
    T lr;
    get(in, &batch, sizeof batch);
    get(in, &lr, sizeof lr);
    T *x = alloc(sizeof(T) * batch * K(_X_ROW));
    T *labels = alloc(sizeof(T) * batch);
    get(in, x, sizeof(T) * batch * K(_X_ROW));
    get(in, labels, sizeof(T) * batch);

    T *params[K(_NUM_PARAMS)], *grads[K(_NUM_PARAMS)];
    for (int i = 0; i < K(_NUM_PARAMS); i++) {
        params[i] = alloc(sizeof(T) * FN(_param_sizes)[i]);
        grads[i] = alloc(sizeof(T) * FN(_param_sizes)[i]);
    }
    FN(_init_params)(params);
    for (int i = 0; i < K(_NUM_PARAMS); i++) put(out, params[i], FN(_param_sizes)[i]);

    /* forward: the first output */
    T *scores = alloc(sizeof(T) * batch * K(_SCORES_ROW));
    void *ws = alloc((size_t)FN(_forward_workspace_size)(batch));
    FN(_forward)(batch, x, (const T *const *)params, scores, ws);
    put(out, scores, batch * K(_SCORES_ROW));
    free(ws);

    /* backward */
    T loss;
    ws = alloc((size_t)FN(_backward_workspace_size)(batch));
#ifdef SEED
    FN(_backward)(batch, x, labels, SEED, 0, (const T *const *)params, &loss, grads, ws);
#else
    FN(_backward)(batch, x, labels, (const T *const *)params, &loss, grads, ws);
#endif
    put(out, &loss, 1);
    for (int i = 0; i < K(_NUM_PARAMS); i++) put(out, grads[i], FN(_param_sizes)[i]);
    free(ws);

    /* two train steps */
#if K(_NUM_STATE) > 0
    T *state[K(_NUM_STATE)];
    for (int i = 0; i < K(_NUM_STATE); i++) state[i] = alloc(sizeof(T) * FN(_state_sizes)[i]);
    FN(_init_state)(state);
#endif
    ws = alloc((size_t)FN(_train_step_workspace_size)(batch));
    for (int step = 0; step < 2; step++) {
#if defined(SEED) && K(_NUM_STATE) > 0
        FN(_train_step)(batch, x, labels, lr, SEED, (uint64_t)step, params, state, &loss, ws);
#elif defined(SEED)
        FN(_train_step)(batch, x, labels, lr, SEED, (uint64_t)step, params, &loss, ws);
#elif K(_NUM_STATE) > 0
        FN(_train_step)(batch, x, labels, lr, params, state, &loss, ws);
#else
        FN(_train_step)(batch, x, labels, lr, params, &loss, ws);
#endif
        put(out, &loss, 1);
    }
    for (int i = 0; i < K(_NUM_PARAMS); i++) put(out, params[i], FN(_param_sizes)[i]);
    free(ws);
    if (fclose(out) != 0) {
        fprintf(stderr, "write failed\n");
        return 1;
    }
    return 0;
}
